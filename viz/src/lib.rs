//! Bevy 3D viewer `aquatwin-view`. Built in issue 7.
