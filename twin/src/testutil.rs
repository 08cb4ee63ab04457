//! Helpers shared by unit tests.

/// A small deterministic pseudo-random generator (SplitMix64) for property-style tests.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A random element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name contains `name`.
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("twin-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `network` solved in steady state.
pub fn steady(network: &hydraulics::model::Network) -> hydraulics::solver::StepResult {
    let options = hydraulics::SimOptions {
        steady: true,
        ..Default::default()
    };
    hydraulics::simulate(network, &options)
        .expect("the test network solves")
        .steps
        .remove(0)
}

/// `network` solved in steady state and linearized there: the state and the sensitivities of
/// `observations`.
pub fn linearized(
    network: &hydraulics::model::Network,
    observations: &[crate::estimate::Observation],
) -> (hydraulics::solver::StepResult, crate::estimate::Sensitivity) {
    let solved = steady(network);
    let units = crate::reading::NetworkUnits::new(&network.options);
    let sensitivity = crate::estimate::Sensitivity::compute(
        network,
        &units,
        &solved.head,
        &solved.flow,
        &solved.status,
        observations,
    );
    (solved, sensitivity)
}
