//! Results in the layout of `shared/design.md` section 4 (the reference JSON layout).
