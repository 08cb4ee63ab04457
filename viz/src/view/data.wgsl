// Data meshes (pipes, junction markers, arrows): the vertex colour as it is. No lighting, no
// textures: on screen a pipe has exactly its legend colour, and software renderers (Mesa's
// lavapipe in CI) spend nothing per pixel beyond this.
#import bevy_pbr::forward_io::VertexOutput

@fragment
fn fragment(in: VertexOutput) -> @location(0) vec4<f32> {
#ifdef VERTEX_COLORS
    return in.color;
#else
    return vec4<f32>(1.0, 1.0, 1.0, 1.0);
#endif
}
