//! glibc-exact `pow` over slices (in progress).
