//! `pow` and `log` of many values at once, giving the same bits as the C library's scalar
//! functions the solver called before (EPANET's results on near-singular networks are
//! decided by round-off, so the solver must reproduce its arithmetic exactly).

mod log;
mod pow;

pub(crate) use log::natural_logs;
pub(crate) use pow::abs_powers;

/// Defines function `$name`, which runs `$body` compiled for AVX where the CPU has it, and
/// `$plain`, the same body as plain code (an `#[inline(always)]` function, for tests to compare
/// the two builds). In the AVX build plain loops over `f64` slices run four values per
/// instruction instead of two. Sums, products, quotients, square roots and comparisons round
/// alike in every lane width, and Rust forms no fused multiply-add, so the results are the
/// bits of the plain build. (A generic function taking a closure would not do: the compiler
/// may keep a large closure out of line, compiled without AVX.)
macro_rules! with_avx {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident / $plain:ident($($arg:ident: $ty:ty),* $(,)?) $body:block
    ) => {
        #[inline(always)]
        fn $plain($($arg: $ty),*) $body

        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                #[target_feature(enable = "avx")]
                unsafe fn compiled_for_avx($($arg: $ty),*) {
                    $plain($($arg),*)
                }
                // SAFETY: the CPU has AVX (checked just above).
                unsafe { compiled_for_avx($($arg),*) };
                return;
            }
            $plain($($arg),*)
        }
    };
}
pub(crate) use with_avx;
