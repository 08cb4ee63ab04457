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

/// EPANET's Net3, the network the demo embeds.
pub fn net3() -> hydraulics::model::Network {
    let text = include_str!("../../hydraulics/networks/Net3.inp");
    hydraulics::read_str(text, "Net3.inp").expect("Net3 parses")
}

/// Pressure observations at every third junction of `network`.
pub fn every_third_pressure(
    network: &hydraulics::model::Network,
) -> Vec<crate::estimate::Observation> {
    (0..network.junction_count())
        .step_by(3)
        .map(crate::estimate::Observation::Pressure)
        .collect()
}

/// A burst alarm whose signature is the change of the observed pressures from `before` to
/// `after`, each with a standard deviation of 0.05.
pub fn pressure_alarm(
    observations: &[crate::estimate::Observation],
    after: &hydraulics::solver::StepResult,
    before: &hydraulics::solver::StepResult,
) -> crate::detect::Alarm {
    let signature: Vec<f64> = observations
        .iter()
        .map(|o| match *o {
            crate::estimate::Observation::Pressure(n) => after.pressure[n] - before.pressure[n],
            _ => f64::NAN,
        })
        .collect();
    crate::detect::Alarm {
        kind: crate::detect::EventKind::Burst,
        time: 0,
        onset: 0,
        junction: 0,
        flow: None,
        strength: 1.0,
        noise: crate::estimate::ObservationNoise::independent(vec![0.05; signature.len()]),
        signature,
    }
}
