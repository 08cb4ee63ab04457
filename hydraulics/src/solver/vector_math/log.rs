//! Natural logarithm of many values at once, with the bits of glibc's `log`.
//!
//! On x86-64 glibc runs `__log_fma` (chosen at load time when the CPU has FMA and AVX2), the
//! algorithm of ARM's optimized-routines (`sysdeps/ieee754/dbl-64/e_log.c`) compiled with
//! fused multiply-adds. Away from 1 it writes `x = 2^k z` with `z` in [0x1.6p-1, 0x1.6p0),
//! takes `1/c` and `ln c` of `z`'s subinterval from a 128-entry table and evaluates
//!
//! ```text
//! r  = fma(z, invc, -1)
//! w  = fma(k, ln2hi, logc)           hi = w + r
//! lo = fma(k, ln2lo, (w - hi) + r)
//! y  = fma(r^3, fma(fma(r, A4, A3), r^2, fma(r, A2, A1)), fma(r^2, A0, lo)) + hi
//! ```
//!
//! with `r^2 = r * r` and `r^3 = r * r^2` (the eight FMAs of `__log_fma`'s disassembly in
//! glibc 2.36, in the same places). The vector path below does exactly these operations on
//! four lanes; the inputs glibc treats apart (`x <= 0`, subnormal, infinite, NaN, and the
//! interval [0.9375, 1.0647) around 1, which has a polynomial of its own) are left to
//! `f64::ln`. The path is used only where `f64::ln` runs `__log_fma` (glibc on an x86-64 CPU
//! with AVX2 and FMA) and after it has given the C library's bits on a set of test inputs;
//! everywhere else every element goes to `f64::ln`.

/// `out[i] = values[i].ln()`, bit for bit, for the elements both slices have.
pub(crate) fn natural_logs(values: &[f64], out: &mut [f64]) {
    let count = values.len().min(out.len());
    let (values, out) = (&values[..count], &mut out[..count]);
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    if fma_path::usable() {
        // SAFETY: `usable` is true only on a CPU with AVX2 and FMA.
        unsafe { fma_path::natural_logs(values, out) };
        return;
    }
    for (value, out) in values.iter().zip(out) {
        *out = value.ln();
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
mod fma_path {
    use std::arch::x86_64::{
        __m256d, __m256i, _mm256_add_pd, _mm256_and_pd, _mm256_and_si256, _mm256_andnot_pd,
        _mm256_castpd_si256, _mm256_castsi256_pd, _mm256_cmp_pd, _mm256_fmadd_pd,
        _mm256_i64gather_epi64, _mm256_loadu_pd, _mm256_movemask_pd, _mm256_mul_pd,
        _mm256_set1_epi64x, _mm256_set1_pd, _mm256_srli_epi64, _mm256_storeu_pd, _mm256_sub_epi64,
        _mm256_sub_pd, _mm256_xor_si256, _CMP_GE_OQ, _CMP_LT_OQ,
    };
    use std::sync::OnceLock;

    /// `ln 2` split so that `k * LN2_HI` is exact: glibc's `__log_data.ln2hi` and `ln2lo`.
    const LN2_HI: u64 = 0x3fe62e42fefa3800;
    const LN2_LO: u64 = 0x3d2ef35793c76730;
    /// `log1p(r) - r` for |r| < 1/256: `__log_data.poly`, A0 to A4.
    const POLY: [u64; 5] = [
        0xbfe0000000000001,
        0x3fd555555551305b,
        0xbfcfffffffeb4590,
        0x3fc999b324f10111,
        0xbfc55575e506c89f,
    ];
    /// Bits of 0x1.6p-1, the start of `z`'s range: `x - OFF` splits into `k` and the index.
    const OFF: u64 = 0x3fe6000000000000;
    /// The interval around 1 that glibc evaluates with another polynomial:
    /// [1 - 0x1p-4, 1 + 0x1.09p-4).
    const NEAR_ONE_LOW: u64 = 0x3fee000000000000;
    const NEAR_ONE_HIGH: u64 = 0x3ff1090000000000;
    /// `2^52 + 2048`: the double whose low mantissa bits hold a biased integer.
    const INTEGER_MAGIC: u64 = 0x4330000000000800;

    /// `__log_data.tab`: (1/c, ln c) of each of the 128 subintervals of `z`, the bits read
    /// from glibc 2.36's libm.so.6 (they equal the table of ARM's optimized-routines).
    static TABLE: [[u64; 2]; 128] = [
        [0x3ff734f0c3e0de9f, 0xbfd7cc7f79e69000],
        [0x3ff713786a2ce91f, 0xbfd76feec20d0000],
        [0x3ff6f26008fab5a0, 0xbfd713e31351e000],
        [0x3ff6d1a61f138c7d, 0xbfd6b85b38287800],
        [0x3ff6b1490bc5b4d1, 0xbfd65d5590807800],
        [0x3ff69147332f0cba, 0xbfd602d076180000],
        [0x3ff6719f18224223, 0xbfd5a8ca86909000],
        [0x3ff6524f99a51ed9, 0xbfd54f4356035000],
        [0x3ff63356aa8f24c4, 0xbfd4f637c36b4000],
        [0x3ff614b36b9ddc14, 0xbfd49da7fda85000],
        [0x3ff5f66452c65c4c, 0xbfd445923989a800],
        [0x3ff5d867b5912c4f, 0xbfd3edf439b0b800],
        [0x3ff5babccb5b90de, 0xbfd396ce448f7000],
        [0x3ff59d61f2d91a78, 0xbfd3401e17bda000],
        [0x3ff5805612465687, 0xbfd2e9e2ef468000],
        [0x3ff56397cee76bd3, 0xbfd2941b3830e000],
        [0x3ff54725e2a77f93, 0xbfd23ec58cda8800],
        [0x3ff52aff42064583, 0xbfd1e9e129279000],
        [0x3ff50f22dbb2bddf, 0xbfd1956d2b48f800],
        [0x3ff4f38f4734ded7, 0xbfd141679ab9f800],
        [0x3ff4d843cfde2840, 0xbfd0edd094ef9800],
        [0x3ff4bd3ec078a3c8, 0xbfd09aa518db1000],
        [0x3ff4a27fc3e0258a, 0xbfd047e65263b800],
        [0x3ff4880524d48434, 0xbfcfeb224586f000],
        [0x3ff46dce1b192d0b, 0xbfcf474a7517b000],
        [0x3ff453d9d3391854, 0xbfcea4443d103000],
        [0x3ff43a2744b4845a, 0xbfce020d44e9b000],
        [0x3ff420b54115f8fb, 0xbfcd60a22977f000],
        [0x3ff40782da3ef4b1, 0xbfccc00104959000],
        [0x3ff3ee8f5d57fe8f, 0xbfcc202956891000],
        [0x3ff3d5d9a00b4ce9, 0xbfcb81178d811000],
        [0x3ff3bd60c010c12b, 0xbfcae2c9ccd3d000],
        [0x3ff3a5242b75dab8, 0xbfca45402e129000],
        [0x3ff38d22cd9fd002, 0xbfc9a877681df000],
        [0x3ff3755bc5847a1c, 0xbfc90c6d69483000],
        [0x3ff35dce49ad36e2, 0xbfc87120a645c000],
        [0x3ff34679984dd440, 0xbfc7d68fb4143000],
        [0x3ff32f5cceffcb24, 0xbfc73cb83c627000],
        [0x3ff3187775a10d49, 0xbfc6a39a9b376000],
        [0x3ff301c8373e3990, 0xbfc60b3154b7a000],
        [0x3ff2eb4ebb95f841, 0xbfc5737d76243000],
        [0x3ff2d50a0219a9d1, 0xbfc4dc7b8fc23000],
        [0x3ff2bef9a8b7fd2a, 0xbfc4462c51d20000],
        [0x3ff2a91c7a0c1bab, 0xbfc3b08abc830000],
        [0x3ff293726014b530, 0xbfc31b996b490000],
        [0x3ff27dfa5757a1f5, 0xbfc2875490a44000],
        [0x3ff268b39b1d3bbf, 0xbfc1f3b9f879a000],
        [0x3ff2539d838ff5bd, 0xbfc160c8252ca000],
        [0x3ff23eb7aac9083b, 0xbfc0ce7f57f72000],
        [0x3ff22a012ba940b6, 0xbfc03cdc49fea000],
        [0x3ff2157996cc4132, 0xbfbf57bdbc4b8000],
        [0x3ff201201dd2fc9b, 0xbfbe370896404000],
        [0x3ff1ecf4494d480b, 0xbfbd17983ef94000],
        [0x3ff1d8f5528f6569, 0xbfbbf9674ed8a000],
        [0x3ff1c52311577e7c, 0xbfbadc79202f6000],
        [0x3ff1b17c74cb26e9, 0xbfb9c0c3e7288000],
        [0x3ff19e010c2c1ab6, 0xbfb8a646b372c000],
        [0x3ff18ab07bb670bd, 0xbfb78d01b3ac0000],
        [0x3ff1778a25efbcb6, 0xbfb674f145380000],
        [0x3ff1648d354c31da, 0xbfb55e0e6d878000],
        [0x3ff151b990275fdd, 0xbfb4485cdea1e000],
        [0x3ff13f0ea432d24c, 0xbfb333d94d6aa000],
        [0x3ff12c8b7210f9da, 0xbfb22079f8c56000],
        [0x3ff11a3028ecb531, 0xbfb10e4698622000],
        [0x3ff107fbda8434af, 0xbfaffa6c6ad20000],
        [0x3ff0f5ee0f4e6bb3, 0xbfadda8d4a774000],
        [0x3ff0e4065d2a9fce, 0xbfabbcece4850000],
        [0x3ff0d244632ca521, 0xbfa9a1894012c000],
        [0x3ff0c0a77ce2981a, 0xbfa788583302c000],
        [0x3ff0af2f83c636d1, 0xbfa5715e67d68000],
        [0x3ff09ddb98a01339, 0xbfa35c8a49658000],
        [0x3ff08cabaf52e7df, 0xbfa149e364154000],
        [0x3ff07b9f2f4e28fb, 0xbf9e72c082eb8000],
        [0x3ff06ab58c358f19, 0xbf9a55f152528000],
        [0x3ff059eea5ecf92c, 0xbf963d62cf818000],
        [0x3ff04949cdd12c90, 0xbf9228fb8caa0000],
        [0x3ff038c6c6f0ada9, 0xbf8c317b20f90000],
        [0x3ff02865137932a9, 0xbf8419355daa0000],
        [0x3ff0182427ea7348, 0xbf781203c2ec0000],
        [0x3ff008040614b195, 0xbf60040979240000],
        [0x3fefe01ff726fa1a, 0x3f6feff384900000],
        [0x3fefa11cc261ea74, 0x3f87dc41353d0000],
        [0x3fef6310b081992e, 0x3f93cea3c4c28000],
        [0x3fef25f63ceeadcd, 0x3f9b9fc114890000],
        [0x3feee9c8039113e7, 0x3fa1b0d8ce110000],
        [0x3feeae8078cbb1ab, 0x3fa58a5bd001c000],
        [0x3fee741aa29d0c9b, 0x3fa95c8340d88000],
        [0x3fee3a91830a99b5, 0x3fad276aef578000],
        [0x3fee01e009609a56, 0x3fb07598e598c000],
        [0x3fedca01e577bb98, 0x3fb253f5e30d2000],
        [0x3fed92f20b7c9103, 0x3fb42edd8b380000],
        [0x3fed5cac66fb5cce, 0x3fb606598757c000],
        [0x3fed272caa5ede9d, 0x3fb7da76356a0000],
        [0x3fecf26e3e6b2ccd, 0x3fb9ab434e1c6000],
        [0x3fecbe6da2a77902, 0x3fbb78c7bb0d6000],
        [0x3fec8b266d37086d, 0x3fbd431332e72000],
        [0x3fec5894bd5d5804, 0x3fbf0a3171de6000],
        [0x3fec26b533bb9f8c, 0x3fc067152b914000],
        [0x3febf583eeece73f, 0x3fc147858292b000],
        [0x3febc4fd75db96c1, 0x3fc2266ecdca3000],
        [0x3feb951e0c864a28, 0x3fc303d7a6c55000],
        [0x3feb65e2c5ef3e2c, 0x3fc3dfc33c331000],
        [0x3feb374867c9888b, 0x3fc4ba366b7a8000],
        [0x3feb094b211d304a, 0x3fc5933928d1f000],
        [0x3feadbe885f2ef7e, 0x3fc66acd2418f000],
        [0x3feaaf1d31603da2, 0x3fc740f8ec669000],
        [0x3fea82e63fd358a7, 0x3fc815c0f51af000],
        [0x3fea5740ef09738b, 0x3fc8e92954f68000],
        [0x3fea2c2a90ab4b27, 0x3fc9bb3602f84000],
        [0x3fea01a01393f2d1, 0x3fca8bed1c2c0000],
        [0x3fe9d79f24db3c1b, 0x3fcb5b515c01d000],
        [0x3fe9ae2505c7b190, 0x3fcc2967ccbcc000],
        [0x3fe9852ef297ce2f, 0x3fccf635d5486000],
        [0x3fe95cbaeea44b75, 0x3fcdc1bd3446c000],
        [0x3fe934c69de74838, 0x3fce8c01b8cfe000],
        [0x3fe90d4f2f6752e6, 0x3fcf5509c0179000],
        [0x3fe8e6528effd79d, 0x3fd00e6c121fb800],
        [0x3fe8bfce9fcc007c, 0x3fd071b80e93d000],
        [0x3fe899c0dabec30e, 0x3fd0d46b9e867000],
        [0x3fe87427aa2317fb, 0x3fd13687334bd000],
        [0x3fe84f00acb39a08, 0x3fd1980d67234800],
        [0x3fe82a49e8653e55, 0x3fd1f8ffe0cc8000],
        [0x3fe8060195f40260, 0x3fd2595fd7636800],
        [0x3fe7e22563e0a329, 0x3fd2b9300914a800],
        [0x3fe7beb377dcb5ad, 0x3fd3187210436000],
        [0x3fe79baa679725c2, 0x3fd377266dec1800],
        [0x3fe77907f2170657, 0x3fd3d54ffbaf3000],
        [0x3fe756cadbd6130c, 0x3fd432eee32fe000],
    ];

    /// Whether the vector path may be used in this process: the CPU has what `__log_fma`
    /// needs, and the path agrees with `f64::ln` on the self-test inputs (another C library,
    /// or another `log` behind `f64::ln`, would not).
    pub(super) fn usable() -> bool {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && agrees_with_libm()
        })
    }

    /// Compares the vector path with `f64::ln` bit for bit on a few hundred inputs spread
    /// over every exponent and the friction factor's range.
    fn agrees_with_libm() -> bool {
        let inputs = self_test_inputs();
        let mut vector = vec![0.0; inputs.len()];
        // SAFETY: called only after AVX2 and FMA were detected.
        unsafe { natural_logs(&inputs, &mut vector) };
        inputs
            .iter()
            .zip(&vector)
            .all(|(x, y)| x.ln().to_bits() == y.to_bits())
    }

    /// 400 positive doubles from the smallest normal one to the largest and 100 between
    /// 1e-7 and 1 (the friction factor's range), evenly spaced in their bits (so every
    /// mantissa bit varies), and the values glibc treats apart.
    fn self_test_inputs() -> Vec<f64> {
        let spread = |from: f64, to: f64, count: u64| {
            let step = (to.to_bits() - from.to_bits()) / count;
            (0..count).map(move |i| f64::from_bits(from.to_bits() + i * step))
        };
        spread(f64::MIN_POSITIVE, f64::MAX, 400)
            .chain(spread(1e-7, 1.0, 100))
            .chain([0.0, -1.0, 1.0, 0.95, 1.05, 5e-324, f64::INFINITY, f64::NAN])
            .collect()
    }

    /// [`super::natural_logs`] on the vector path, four lanes at a time.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn natural_logs(values: &[f64], out: &mut [f64]) {
        let mut inputs = values.chunks_exact(4);
        let mut outputs = out.chunks_exact_mut(4);
        for (input, output) in (&mut inputs).zip(&mut outputs) {
            // SAFETY: both chunks hold four doubles; unaligned loads and stores.
            let x = unsafe { _mm256_loadu_pd(input.as_ptr()) };
            let (y, other_lanes) = ln_lanes(x);
            // SAFETY: as above.
            unsafe { _mm256_storeu_pd(output.as_mut_ptr(), y) };
            if other_lanes != 0 {
                redo_lanes(input, other_lanes, output);
            }
        }
        let (input, output) = (inputs.remainder(), outputs.into_remainder());
        if !input.is_empty() {
            // 2 is on the table path: the padding lanes take no fallback.
            let mut padded = [2.0; 4];
            padded[..input.len()].copy_from_slice(input);
            let mut results = [0.0; 4];
            // SAFETY: the caller's guarantee holds for this call too.
            unsafe { natural_logs(&padded, &mut results) };
            output.copy_from_slice(&results[..output.len()]);
        }
    }

    /// Recomputes with `f64::ln` the lanes whose bit in `lanes` is set.
    fn redo_lanes(input: &[f64], lanes: i32, output: &mut [f64]) {
        for (lane, (x, out)) in input.iter().zip(output).enumerate() {
            if lanes & (1 << lane) != 0 {
                *out = x.ln();
            }
        }
    }

    /// `__log_fma`'s table path on four lanes, and the mask of the lanes it does not cover
    /// (bit `i` set for lane `i`; their results are meaningless).
    #[target_feature(enable = "avx2,fma")]
    fn ln_lanes(x: __m256d) -> (__m256d, i32) {
        let constant = |bits: u64| _mm256_castsi256_pd(_mm256_set1_epi64x(bits as i64));
        // Normal, finite, positive and outside the interval around 1; NaN fails every
        // ordered comparison.
        let normal = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GE_OQ>(x, _mm256_set1_pd(f64::MIN_POSITIVE)),
            _mm256_cmp_pd::<_CMP_LT_OQ>(x, _mm256_set1_pd(f64::INFINITY)),
        );
        let near_one = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GE_OQ>(x, constant(NEAR_ONE_LOW)),
            _mm256_cmp_pd::<_CMP_LT_OQ>(x, constant(NEAR_ONE_HIGH)),
        );
        let table_path = _mm256_andnot_pd(near_one, normal);
        let other_lanes = !_mm256_movemask_pd(table_path) & 0b1111;

        let ix = _mm256_castpd_si256(x);
        let tmp = _mm256_sub_epi64(ix, _mm256_set1_epi64x(OFF as i64));
        // k = tmp >> 52 (arithmetic), as a double: its 12 bits, biased by 2048, in the
        // mantissa of 2^52 + 2048, less that number (exact).
        let biased_k = _mm256_xor_si256(
            _mm256_srli_epi64::<52>(tmp),
            _mm256_set1_epi64x(INTEGER_MAGIC as i64),
        );
        let kd = _mm256_sub_pd(_mm256_castsi256_pd(biased_k), constant(INTEGER_MAGIC));
        let exponent_bits =
            _mm256_and_si256(tmp, _mm256_set1_epi64x(0xfff0_0000_0000_0000_u64 as i64));
        let z = _mm256_castsi256_pd(_mm256_sub_epi64(ix, exponent_bits));
        // Offsets in doubles of the index's (invc, logc) pair: 2 * ((tmp >> 45) % 128).
        let pair = _mm256_and_si256(_mm256_srli_epi64::<44>(tmp), _mm256_set1_epi64x(0xfe));
        let (invc, logc) = table_entries(pair);

        let r = _mm256_fmadd_pd(z, invc, _mm256_set1_pd(-1.0));
        let w = _mm256_fmadd_pd(kd, constant(LN2_HI), logc);
        let hi = _mm256_add_pd(w, r);
        let lo = _mm256_fmadd_pd(kd, constant(LN2_LO), _mm256_add_pd(_mm256_sub_pd(w, hi), r));
        let r2 = _mm256_mul_pd(r, r);
        let r3 = _mm256_mul_pd(r, r2);
        let [a0, a1, a2, a3, a4] = POLY.map(constant);
        let low_terms = _mm256_fmadd_pd(r, a2, a1);
        let high_terms = _mm256_fmadd_pd(r, a4, a3);
        let poly = _mm256_fmadd_pd(high_terms, r2, low_terms);
        let y = _mm256_fmadd_pd(r3, poly, _mm256_fmadd_pd(r2, a0, lo));
        (_mm256_add_pd(y, hi), other_lanes)
    }

    /// `TABLE`'s (invc, logc) at the given offsets (in doubles, even, below 256).
    #[target_feature(enable = "avx2,fma")]
    fn table_entries(pair: __m256i) -> (__m256d, __m256d) {
        let base = TABLE.as_ptr().cast::<i64>();
        // SAFETY: every offset is at most 254, and `TABLE` holds 256 values: both gathers
        // (the second one double further) stay inside it.
        let (invc, logc) = unsafe {
            (
                _mm256_i64gather_epi64::<8>(base, pair),
                _mm256_i64gather_epi64::<8>(base.add(1), pair),
            )
        };
        (_mm256_castsi256_pd(invc), _mm256_castsi256_pd(logc))
    }
}

#[cfg(test)]
mod tests {
    use super::natural_logs;

    /// Inputs of one batch of the comparison.
    const BATCH: usize = 1 << 20;

    /// xorshift64*, seeded per test.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// The vector path where the CPU has it, whatever its self-test said (so that these
    /// tests compare the vector path itself with `f64::ln`); `natural_logs` elsewhere.
    fn vector_logs(inputs: &[f64], out: &mut [f64]) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA.
            unsafe { super::fma_path::natural_logs(inputs, out) };
            return;
        }
        natural_logs(inputs, out);
    }

    /// Inputs whose `ln` differs from the vector path's in any bit (at most 10 kept), and
    /// how many there were.
    fn mismatches(inputs: &[f64]) -> (usize, Vec<u64>) {
        let mut vector = vec![0.0; inputs.len()];
        vector_logs(inputs, &mut vector);
        let differing: Vec<u64> = inputs
            .iter()
            .zip(&vector)
            .filter(|(x, y)| x.ln().to_bits() != y.to_bits())
            .map(|(x, _)| x.to_bits())
            .collect();
        (differing.len(), differing.into_iter().take(10).collect())
    }

    /// Runs `batches` batches of inputs made by `input` and checks that none differs.
    fn assert_same_bits(batches: usize, mut input: impl FnMut() -> f64) {
        let mut inputs = vec![0.0; BATCH];
        for _ in 0..batches {
            inputs.fill_with(&mut input);
            let (count, examples) = mismatches(&inputs);
            assert_eq!(count, 0, "inputs (bits) with other results: {examples:x?}");
        }
    }

    #[test]
    fn takes_the_vector_path_where_glibc_runs_its_fma_build() {
        if cfg!(all(
            target_arch = "x86_64",
            target_os = "linux",
            target_env = "gnu"
        )) && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
        {
            // Otherwise the comparisons below would compare `f64::ln` with itself.
            #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
            assert!(
                super::fma_path::usable(),
                "the self-test against libm failed"
            );
        }
    }

    #[test]
    fn same_bits_as_libm_on_the_friction_factor_range() {
        // Swamee-Jain's argument: log-uniform from 1e-6 to 1 (4 million values).
        let mut random = Random(0x1234_5678_9abc_def1);
        assert_same_bits(4, || 1e-6_f64.powf(random.unit()));
    }

    #[test]
    fn same_bits_as_libm_on_random_bit_patterns() {
        // Every exponent, both signs, NaN payloads, subnormals (4 million values), then
        // positive ones only (2 million).
        let mut random = Random(0x0f1e_2d3c_4b5a_6978);
        assert_same_bits(4, || f64::from_bits(random.next()));
        assert_same_bits(2, || f64::from_bits(random.next() >> 1));
    }

    #[test]
    fn same_bits_as_libm_near_one_and_at_table_boundaries() {
        let mut random = Random(0x7777_3333_1111_5555);
        // Within 1/8 of 1: both sides of glibc's near-one interval (1 million values).
        assert_same_bits(1, || 1.0 + (random.unit() - 0.5) * 0.25);
        // A few ulps either side of every subinterval boundary of z, in many binades, and of
        // the near-one interval's ends (about 1.05 million values).
        let mut boundaries = Vec::new();
        for exponent in (-1021_i64..1023).step_by(2) {
            let scale = (exponent << 52) as u64;
            for index in 0..128_u64 {
                let boundary = 0x3fe6_0000_0000_0000_u64 + (index << 45);
                for ulps in 0..4 {
                    boundaries.push(boundary.wrapping_add(scale).wrapping_add(ulps));
                    boundaries.push(boundary.wrapping_add(scale).wrapping_sub(ulps + 1));
                }
            }
        }
        for edge in [
            0x3fee_0000_0000_0000_u64,
            0x3ff1_0900_0000_0000,
            1.0_f64.to_bits(),
        ] {
            boundaries.extend((0..1000).map(|ulps| edge - 500 + ulps));
        }
        let inputs: Vec<f64> = boundaries.into_iter().map(f64::from_bits).collect();
        assert!(inputs.len() > 1_000_000);
        let (count, examples) = mismatches(&inputs);
        assert_eq!(count, 0, "inputs (bits) with other results: {examples:x?}");
    }

    #[test]
    fn same_bits_as_libm_on_special_values_and_every_slice_length() {
        let special = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE * 0.5,
            5e-324,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            -1.0,
            1.0,
            2.0,
            0.5,
            f64::EPSILON,
            1e-300,
            1e300,
        ];
        for length in 0..=special.len() {
            for start in 0..special.len() - length {
                let (count, examples) = mismatches(&special[start..start + length]);
                assert_eq!(count, 0, "inputs (bits) with other results: {examples:x?}");
            }
        }
        // The public function takes the elements both slices have.
        let mut out = [7.0; 3];
        natural_logs(&[2.0, 4.0, 8.0, 16.0], &mut out);
        assert_eq!(out, [2f64.ln(), 4f64.ln(), 8f64.ln()]);
    }

    /// The long check, by hand (about a minute):
    /// `cargo test -p hydraulics --lib vector_math::log -- --ignored`.
    #[test]
    #[ignore = "a billion inputs: run by hand"]
    fn same_bits_as_libm_on_a_billion_inputs() {
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        let mut count = 0_usize;
        // 1.05e9 values: a third log-uniform in [1e-6, 1], a third positive bit patterns,
        // a third any bit pattern.
        assert_same_bits(1000, || {
            count += 1;
            match (count / BATCH) % 3 {
                0 => 1e-6_f64.powf(random.unit()),
                1 => f64::from_bits(random.next() >> 1),
                _ => f64::from_bits(random.next()),
            }
        });
    }
}
