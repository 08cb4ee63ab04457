//! glibc-exact `log` over slices (in progress).
