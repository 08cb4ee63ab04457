//! `aquatwin-view`: the 3D viewer of a network, of its results over time and of a live twin.
//!
//! Pure parts (no Bevy systems, unit-tested on their own): [`layout`] (positions for networks
//! without coordinates), [`geometry`] (world placement and sizes), [`meshes`] (merged vertex
//! data), [`colour`] (quantities, scales, legend), [`frames`] (values over time),
//! [`playback`] (the timeline), [`pick`] (screen-space selection), [`live`] (the API client).
//! [`view`] is the Bevy application built from them, one plugin per feature.

pub mod colour;
pub mod frames;
pub mod geometry;
pub mod layout;
pub mod live;
pub mod meshes;
pub mod pick;
pub mod playback;
pub mod view;

/// Networks the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    /// `shared/networks/Net3.inp`, EPANET's example with tanks, pumps and an EPS.
    pub fn net3() -> hydraulics::Network {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/networks/Net3.inp"
        );
        hydraulics::read_file(std::path::Path::new(path)).expect("shared/networks/Net3.inp")
    }

    /// Net3 placed for drawing, with the automatic exaggeration.
    pub fn net3_geometry() -> crate::geometry::Geometry {
        crate::geometry::Geometry::new(&net3(), None)
    }
}
