//! All detectors of one network over aligned snapshots, with the sensor-fault-versus-leak
//! decision.

use std::collections::VecDeque;

use super::stats::{correlation, robust_fit};
use super::{
    unit_interval, BurstConfig, BurstDetector, Cusum, CusumConfig, DetectError, Detection,
    Direction, Event, EventKind, EventSource, Ewma, EwmaConfig, NightFlowConfig, NightFlowDetector,
    Snapshot, TransientConfig, TransientDetector,
};

/// Parameters of a [`Monitor`].
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorConfig {
    /// Per-sensor CUSUM (also used on the inlet flow residual).
    pub cusum: CusumConfig,
    /// Per-sensor EWMA (also used on the inlet flow residual).
    pub ewma: EwmaConfig,
    /// Burst detector.
    pub burst: BurstConfig,
    /// Minimum night flow on the measured inlet flow.
    pub night_flow: NightFlowConfig,
    /// Rate-of-change detector on every pressure residual.
    pub transient: TransientConfig,
    /// Two pressure sensors are hydraulic neighbours when their training residuals correlate at
    /// least this much.
    pub neighbour_min_correlation: f64,
    /// At most this many neighbours per sensor (the most correlated).
    pub max_neighbours: usize,
    /// Samples in the moving mean that measures each series' current shift (the evidence).
    pub evidence_samples: usize,
    /// A neighbour moved coherently when its shift is at least this many learned standard
    /// deviations of the moving mean in the same direction (or its CUSUM is past half its
    /// threshold, or it alarmed the same way within `coherence_ms`).
    pub neighbour_z: f64,
    /// A leak needs at least this share of a sensor's neighbours to have moved down with it (or
    /// the inlet flow up); a coherent rise of this share is operational and dropped; anything
    /// less, once `decision_delay_ms` has passed, is a sensor fault.
    pub min_coherent_fraction: f64,
    /// The inlet flow rose when its shift is at least this many learned standard deviations (or
    /// the same CUSUM and recent-alarm rules hold).
    pub flow_z: f64,
    /// A neighbour's alarm in the same direction counts as coherence for this long (ms).
    pub coherence_ms: i64,
    /// A pressure alarm with no supporting evidence is held this long (ms) before it is called a
    /// sensor fault, so that slower neighbours can catch up; leak evidence decides at once.
    pub decision_delay_ms: i64,
    /// After a leak or burst event, further leak events (not bursts: the burst detector has its
    /// own holdoff) are suppressed this long (ms), so that one leak is reported once while its
    /// alarms keep coming.
    pub leak_holdoff_ms: i64,
    /// After an event triggered by a sensor, its further alarms are ignored this long (ms).
    pub sensor_holdoff_ms: i64,
    /// Id used for the inlet flow in events.
    pub inlet_id: String,
}

impl Default for MonitorConfig {
    /// The detectors' defaults, except that per-sensor charts restart at once after an alarm
    /// (`rearm_samples = 0`): the monitor's holdoffs de-duplicate, and a sensor whose alarm was
    /// dropped is looked at again at its next alarm.
    fn default() -> Self {
        Self {
            cusum: CusumConfig {
                rearm_samples: 0,
                ..CusumConfig::default()
            },
            ewma: EwmaConfig {
                rearm_samples: 0,
                ..EwmaConfig::default()
            },
            burst: BurstConfig::default(),
            night_flow: NightFlowConfig::default(),
            transient: TransientConfig::default(),
            neighbour_min_correlation: 0.5,
            max_neighbours: 4,
            evidence_samples: 12,
            neighbour_z: 2.0,
            min_coherent_fraction: 0.5,
            flow_z: 2.0,
            coherence_ms: 6 * 3_600_000,
            decision_delay_ms: 1_800_000,
            leak_holdoff_ms: 72 * 3_600_000,
            sensor_holdoff_ms: 24 * 3_600_000,
            inlet_id: "inlet".to_owned(),
        }
    }
}

/// The hydraulic neighbours of each pressure sensor (indices, with a weight such as the
/// correlation), learned from training residuals or supplied (e.g. from leak sensitivities).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NeighbourMap {
    lists: Vec<Vec<(usize, f64)>>,
}

impl NeighbourMap {
    /// Neighbours by correlation of the training pressure residuals: for each sensor the
    /// `max_neighbours` others correlating at least `min_correlation`, most correlated first.
    pub fn learn(
        training: &[Snapshot],
        sensors: usize,
        min_correlation: f64,
        max_neighbours: usize,
    ) -> Self {
        let columns: Vec<Vec<f64>> = (0..sensors)
            .map(|i| {
                training
                    .iter()
                    .map(|s| s.pressures.get(i).copied().unwrap_or(f64::NAN))
                    .collect()
            })
            .collect();
        let lists = (0..sensors)
            .map(|i| {
                let mut list: Vec<(usize, f64)> = (0..sensors)
                    .filter(|&j| j != i)
                    .filter_map(|j| correlation(&columns[i], &columns[j]).map(|r| (j, r)))
                    .filter(|&(_, r)| r >= min_correlation)
                    .collect();
                list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                list.truncate(max_neighbours);
                list
            })
            .collect();
        Self { lists }
    }

    /// A map from explicit lists (`lists[i]` = neighbours of sensor `i` with weights).
    pub fn from_lists(lists: Vec<Vec<(usize, f64)>>) -> Self {
        Self { lists }
    }

    /// The neighbours of sensor `i`.
    pub fn neighbours(&self, i: usize) -> &[(usize, f64)] {
        self.lists.get(i).map_or(&[], Vec::as_slice)
    }
}

/// One residual series: its change detectors and the moving mean that measures its shift.
#[derive(Debug, Clone, PartialEq)]
struct Channel {
    cusum: Cusum,
    ewma: Ewma,
    window: VecDeque<f64>,
    capacity: usize,
    window_location: f64,
    window_scale: f64,
    last_alarm: Option<(i64, Direction)>,
}

impl Channel {
    fn fit(config: &MonitorConfig, series: &[f64]) -> Result<Self, DetectError> {
        let cusum = Cusum::fit(config.cusum.clone(), series)?;
        let ewma = Ewma::fit(config.ewma.clone(), series)?;
        let capacity = config.evidence_samples.max(1);
        let finite: Vec<f64> = series.iter().copied().filter(|x| x.is_finite()).collect();
        let means: Vec<f64> = finite
            .windows(capacity.min(finite.len().max(1)))
            .map(|w| w.iter().sum::<f64>() / w.len() as f64)
            .collect();
        let (window_location, window_scale) = robust_fit(&means, 2, 0.0)
            .map_or((cusum.location(), cusum.scale()), |f| (f.location, f.scale));
        Ok(Self {
            cusum,
            ewma,
            window: VecDeque::with_capacity(capacity + 1),
            capacity,
            window_location,
            window_scale,
            last_alarm: None,
        })
    }

    /// Feeds one value; returns the alarms (CUSUM first).
    fn push(&mut self, time: i64, value: f64) -> Vec<(Detection, EventSource)> {
        if value.is_finite() {
            self.window.push_back(value);
            if self.window.len() > self.capacity {
                self.window.pop_front();
            }
        }
        let mut alarms = Vec::new();
        alarms.extend(
            self.cusum
                .update(time, value)
                .map(|d| (d, EventSource::Cusum)),
        );
        alarms.extend(
            self.ewma
                .update(time, value)
                .map(|d| (d, EventSource::Ewma)),
        );
        if let Some((d, _)) = alarms.first() {
            self.last_alarm = Some((time, d.direction));
        }
        alarms
    }

    /// The current moving-mean shift from the training level (series units; 0 with too few
    /// samples).
    fn shift(&self) -> f64 {
        if self.window.len() * 2 < self.capacity {
            return 0.0;
        }
        self.window.iter().sum::<f64>() / self.window.len() as f64 - self.window_location
    }

    /// The shift in learned standard deviations of the moving mean.
    fn evidence(&self) -> f64 {
        self.shift() / self.window_scale
    }

    /// Whether this series has moved in `direction`: by its moving mean, its CUSUM, or a recent
    /// alarm.
    fn moved(&self, direction: Direction, z: f64, now: i64, coherence_ms: i64) -> bool {
        let (up, down) = self.cusum.statistics();
        let stat = if direction == Direction::Up { up } else { down };
        self.evidence() * direction.sign() >= z
            || stat >= 0.5 * self.cusum.threshold()
            || self
                .last_alarm
                .is_some_and(|(t, d)| d == direction && now - t <= coherence_ms)
    }
}

/// A pressure alarm waiting for its classification.
#[derive(Debug, Clone, PartialEq)]
struct Pending {
    sensor: usize,
    detection: Detection,
    source: EventSource,
    due: i64,
}

/// What becomes of a pending alarm.
#[derive(Debug)]
enum Decision {
    /// An event is raised.
    Emit(Event),
    /// Nothing is raised (explained by an event already reported, or operational).
    Drop,
    /// Not decided yet.
    Wait,
}

/// All detectors of one network over aligned [`Snapshot`]s (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    config: MonitorConfig,
    ids: Vec<String>,
    channels: Vec<Option<Channel>>,
    transients: Vec<Option<TransientDetector>>,
    inlet: Option<Channel>,
    night: Option<NightFlowDetector>,
    burst: Option<BurstDetector>,
    neighbours: NeighbourMap,
    pending: Vec<Pending>,
    last_leak: Option<i64>,
    last_sensor_event: Vec<Option<i64>>,
    last_time: Option<i64>,
    disabled: Vec<(String, DetectError)>,
}

/// A fitted detector, or `None` (recorded in `disabled`) when its training data is too short or
/// flat; other errors (bad parameters, ragged data) are passed on.
fn keep<T>(
    disabled: &mut Vec<(String, DetectError)>,
    name: String,
    fitted: Result<T, DetectError>,
) -> Result<Option<T>, DetectError> {
    match fitted {
        Ok(d) => Ok(Some(d)),
        Err(e @ (DetectError::TooFewSamples { .. } | DetectError::DegenerateScale)) => {
            disabled.push((name, e));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl Monitor {
    /// Fits every detector on leak-free training snapshots (`sensors[i]` names `pressures[i]`).
    /// A detector whose training data is too short or flat is disabled (see
    /// [`Monitor::disabled`]); bad parameters and ragged snapshots are errors.
    pub fn fit(
        config: MonitorConfig,
        sensors: Vec<String>,
        training: &[Snapshot],
    ) -> Result<Self, DetectError> {
        let n = sensors.len();
        if let Some(bad) = training.iter().find(|s| s.pressures.len() != n) {
            return Err(DetectError::ShapeMismatch {
                time: bad.time,
                expected: n,
                got: bad.pressures.len(),
            });
        }
        let mut disabled = Vec::new();
        let mut channels = Vec::with_capacity(n);
        let mut transients = Vec::with_capacity(n);
        for (i, id) in sensors.iter().enumerate() {
            let column: Vec<f64> = training.iter().map(|s| s.pressures[i]).collect();
            channels.push(keep(
                &mut disabled,
                format!("sensor {id}"),
                Channel::fit(&config, &column),
            )?);
            let timed: Vec<(i64, f64)> =
                training.iter().map(|s| (s.time, s.pressures[i])).collect();
            transients.push(keep(
                &mut disabled,
                format!("transient {id}"),
                TransientDetector::fit(config.transient.clone(), &timed),
            )?);
        }
        let inlet_series: Vec<f64> = training.iter().map(|s| s.inlet_residual).collect();
        let inlet = keep(
            &mut disabled,
            "inlet".to_owned(),
            Channel::fit(&config, &inlet_series),
        )?;
        let flows: Vec<(i64, f64)> = training.iter().map(|s| (s.time, s.inlet_flow)).collect();
        let night = keep(
            &mut disabled,
            "night_flow".to_owned(),
            NightFlowDetector::fit(config.night_flow.clone(), &flows),
        )?;
        let burst_config = BurstConfig {
            require_flow: config.burst.require_flow && inlet.is_some(),
            ..config.burst.clone()
        };
        let burst = keep(
            &mut disabled,
            "burst".to_owned(),
            BurstDetector::fit(burst_config, training),
        )?;
        let neighbours = NeighbourMap::learn(
            training,
            n,
            config.neighbour_min_correlation,
            config.max_neighbours,
        );
        Ok(Self {
            config,
            ids: sensors,
            channels,
            transients,
            inlet,
            night,
            burst,
            neighbours,
            pending: Vec::new(),
            last_leak: None,
            last_sensor_event: vec![None; n],
            last_time: None,
            disabled,
        })
    }

    /// Replaces the learned neighbour structure (e.g. with one from leak sensitivities).
    pub fn with_neighbours(mut self, neighbours: NeighbourMap) -> Self {
        self.neighbours = neighbours;
        self
    }

    /// The neighbour structure in use.
    pub fn neighbours(&self) -> &NeighbourMap {
        &self.neighbours
    }

    /// The detectors disabled at fit time (name, reason).
    pub fn disabled(&self) -> &[(String, DetectError)] {
        &self.disabled
    }

    fn leak_allowed(&self, time: i64) -> bool {
        self.last_leak
            .is_none_or(|t| time - t >= self.config.leak_holdoff_ms)
    }

    fn sensor_quiet(&self, i: usize, time: i64) -> bool {
        self.last_sensor_event[i].is_none_or(|t| time - t >= self.config.sensor_holdoff_ms)
            && !self.pending.iter().any(|p| p.sensor == i)
    }

    fn inlet_rose(&self, now: i64) -> bool {
        self.inlet.as_ref().is_some_and(|c| {
            c.moved(
                Direction::Up,
                self.config.flow_z,
                now,
                self.config.coherence_ms,
            )
        })
    }

    /// Pressure sensors other than `except` whose residual moved down now.
    fn dropping(&self, except: Option<usize>, now: i64) -> Vec<usize> {
        self.channels
            .iter()
            .enumerate()
            .filter(|(j, _)| Some(*j) != except)
            .filter_map(|(j, c)| c.as_ref().map(|c| (j, c)))
            .filter(|(_, c)| {
                c.moved(
                    Direction::Down,
                    self.config.neighbour_z,
                    now,
                    self.config.coherence_ms,
                )
            })
            .map(|(j, _)| j)
            .collect()
    }

    /// Mean current drop (positive) of the given sensors' residuals.
    fn mean_drop(&self, sensors: &[usize]) -> f64 {
        let drops: Vec<f64> = sensors
            .iter()
            .filter_map(|&j| self.channels[j].as_ref())
            .map(|c| -c.shift())
            .collect();
        drops.iter().sum::<f64>() / drops.len().max(1) as f64
    }

    /// Feeds one snapshot; returns the events it completes, in time order.
    pub fn update(&mut self, snap: &Snapshot) -> Result<Vec<Event>, DetectError> {
        if snap.pressures.len() != self.ids.len() {
            return Err(DetectError::ShapeMismatch {
                time: snap.time,
                expected: self.ids.len(),
                got: snap.pressures.len(),
            });
        }
        if self.last_time.is_some_and(|t| snap.time <= t) {
            return Ok(Vec::new());
        }
        self.last_time = Some(snap.time);
        let now = snap.time;
        let mut events = Vec::new();

        // Per-series detectors first, so that every piece of evidence is current.
        let mut alarms = Vec::new();
        for (i, channel) in self.channels.iter_mut().enumerate() {
            if let Some(c) = channel {
                alarms.extend(c.push(now, snap.pressures[i]).into_iter().map(|a| (i, a)));
            }
        }
        let inlet_alarms = self
            .inlet
            .as_mut()
            .map_or_else(Vec::new, |c| c.push(now, snap.inlet_residual));
        for (i, det) in self.transients.iter_mut().enumerate() {
            if let Some(tr) = det.as_mut().and_then(|d| d.update(now, snap.pressures[i])) {
                events.push(Event {
                    kind: EventKind::Transient,
                    source: EventSource::RateOfChange,
                    time: now,
                    onset: None,
                    sensors: vec![self.ids[i].clone()],
                    magnitude: tr.rate,
                    estimated_flow: None,
                    confidence: tr.confidence,
                });
            }
        }

        // Bursts.
        let burst = match self.burst.as_mut() {
            Some(b) => b.update(snap)?,
            None => None,
        };
        if let Some(b) = burst {
            self.last_leak = Some(now);
            let magnitude = b.drops.iter().sum::<f64>() / b.drops.len().max(1) as f64;
            events.push(Event {
                kind: EventKind::Burst,
                source: EventSource::Burst,
                time: now,
                onset: Some(b.onset),
                sensors: b.sensors.iter().map(|&j| self.ids[j].clone()).collect(),
                magnitude,
                estimated_flow: b.flow_rise,
                confidence: b.confidence,
            });
        }

        // Minimum night flow.
        let rise = self
            .night
            .as_mut()
            .and_then(|d| d.update(now, snap.inlet_flow));
        if let Some(r) = rise.filter(|_| self.leak_allowed(now)) {
            self.last_leak = Some(now);
            events.push(Event {
                kind: EventKind::Leak,
                source: EventSource::NightFlow,
                time: now,
                onset: Some(r.onset),
                sensors: Vec::new(),
                magnitude: r.estimated_flow,
                estimated_flow: Some(r.estimated_flow),
                confidence: unit_interval(1.0 - 0.5_f64.powf(r.estimated_flow / r.threshold)),
            });
        }

        // The inlet flow rising is a leak candidate by itself.
        if let Some((d, source)) = inlet_alarms
            .into_iter()
            .find(|(d, _)| d.direction == Direction::Up)
        {
            if self.leak_allowed(now) {
                self.last_leak = Some(now);
                let sensors = self.dropping(None, now);
                let active = self.channels.iter().flatten().count().max(1);
                events.push(Event {
                    kind: EventKind::Leak,
                    source,
                    time: now,
                    onset: Some(d.onset),
                    magnitude: if sensors.is_empty() {
                        d.shift
                    } else {
                        self.mean_drop(&sensors)
                    },
                    confidence: unit_interval(0.5 + 0.5 * sensors.len() as f64 / active as f64),
                    sensors: sensors.iter().map(|&j| self.ids[j].clone()).collect(),
                    estimated_flow: Some(d.shift),
                });
            }
        }

        // Pressure alarms wait for their classification.
        for (i, (detection, source)) in alarms {
            if self.sensor_quiet(i, now) {
                self.pending.push(Pending {
                    sensor: i,
                    detection,
                    source,
                    due: now + self.config.decision_delay_ms,
                });
            }
        }
        let pending = std::mem::take(&mut self.pending);
        for p in pending {
            match self.classify(&p, now) {
                Decision::Emit(event) => events.push(event),
                Decision::Drop => {}
                Decision::Wait => self.pending.push(p),
            }
        }
        events.sort_by_key(|e| e.time);
        Ok(events)
    }

    /// Decides a pending pressure alarm.
    fn classify(&mut self, p: &Pending, now: i64) -> Decision {
        let i = p.sensor;
        let direction = p.detection.direction;
        let neighbours: Vec<usize> = self
            .neighbours
            .neighbours(i)
            .iter()
            .map(|&(j, _)| j)
            .filter(|&j| self.channels.get(j).is_some_and(Option::is_some))
            .collect();
        let coherent: Vec<usize> = neighbours
            .iter()
            .copied()
            .filter(|&j| {
                self.channels[j].as_ref().is_some_and(|c| {
                    c.moved(
                        direction,
                        self.config.neighbour_z,
                        now,
                        self.config.coherence_ms,
                    )
                })
            })
            .collect();
        let flow = direction == Direction::Down && self.inlet_rose(now);
        let needed =
            ((self.config.min_coherent_fraction * neighbours.len() as f64).ceil() as usize).max(1);
        let majority = coherent.len() >= needed;
        let leak_evidence = direction == Direction::Down && (flow || majority);
        if leak_evidence {
            self.last_sensor_event[i] = Some(now);
            if !self.leak_allowed(now) {
                // Part of a leak already reported: not a fault, nothing new.
                return Decision::Drop;
            }
            self.last_leak = Some(now);
            let mut involved = vec![i];
            involved.extend(self.dropping(Some(i), now));
            let others = self.mean_drop(&involved[1..]);
            let magnitude = if involved.len() > 1 {
                (-p.detection.shift + others * (involved.len() - 1) as f64) / involved.len() as f64
            } else {
                -p.detection.shift
            };
            let share = coherent.len() as f64 / neighbours.len().max(1) as f64;
            return Decision::Emit(Event {
                kind: EventKind::Leak,
                source: p.source,
                time: now,
                onset: Some(p.detection.onset),
                sensors: involved.iter().map(|&j| self.ids[j].clone()).collect(),
                magnitude,
                estimated_flow: self.inlet.as_ref().filter(|_| flow).map(Channel::shift),
                confidence: unit_interval(0.3 + 0.4 * share + 0.3 * f64::from(u8::from(flow))),
            });
        }
        if majority {
            // A coherent rise: operational, neither a leak nor a fault.
            return Decision::Drop;
        }
        if now < p.due {
            return Decision::Wait;
        }
        self.last_sensor_event[i] = Some(now);
        let strongest = neighbours
            .iter()
            .filter_map(|&j| self.channels[j].as_ref())
            .map(|c| c.evidence() * direction.sign())
            .fold(0.0_f64, f64::max);
        let confidence = if neighbours.is_empty() {
            0.4
        } else {
            0.6 + 0.3 * (1.0 - strongest / self.config.neighbour_z).clamp(0.0, 1.0)
        };
        Decision::Emit(Event {
            kind: EventKind::SensorFault,
            source: p.source,
            time: now,
            onset: Some(p.detection.onset),
            sensors: vec![self.ids[i].clone()],
            magnitude: p.detection.shift,
            estimated_flow: None,
            confidence,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: i64, pressures: Vec<f64>) -> Snapshot {
        Snapshot {
            time,
            pressures,
            inlet_flow: f64::NAN,
            inlet_residual: f64::NAN,
        }
    }

    #[test]
    fn neighbours_are_the_most_correlated_sensors() {
        let mut rng = crate::testutil::Rng::new(5);
        let training: Vec<Snapshot> = (0..500)
            .map(|k| {
                let common = crate::detect::gaussian(&mut rng);
                let own = crate::detect::gaussian(&mut rng);
                snap(k, vec![common, common + 0.1 * own, own])
            })
            .collect();
        let map = NeighbourMap::learn(&training, 3, 0.5, 4);
        assert_eq!(
            map.neighbours(0).iter().map(|n| n.0).collect::<Vec<_>>(),
            [1]
        );
        assert!(map.neighbours(2).is_empty());
        assert!(map.neighbours(7).is_empty());
        let explicit = NeighbourMap::from_lists(vec![vec![(2, 1.0)], vec![], vec![(0, 1.0)]]);
        let monitor = Monitor::fit(
            MonitorConfig::default(),
            vec!["a".into(), "b".into(), "c".into()],
            &training,
        )
        .expect("fit")
        .with_neighbours(explicit.clone());
        assert_eq!(monitor.neighbours(), &explicit);
        let flow_detectors: Vec<&str> = monitor.disabled().iter().map(|d| d.0.as_str()).collect();
        assert_eq!(
            flow_detectors,
            ["inlet", "night_flow"],
            "no inlet flow: burst runs on pressure alone"
        );
        assert!(monitor.burst.is_some());
    }

    #[test]
    fn ragged_snapshots_are_rejected() {
        let training: Vec<Snapshot> = (0..100).map(|k| snap(k, vec![(k % 7) as f64])).collect();
        let mut monitor =
            Monitor::fit(MonitorConfig::default(), vec!["a".into()], &training).expect("fit");
        assert!(matches!(
            monitor.update(&snap(200, vec![1.0, 2.0])),
            Err(DetectError::ShapeMismatch {
                expected: 1,
                got: 2,
                ..
            })
        ));
        assert!(Monitor::fit(MonitorConfig::default(), vec![], &training).is_err());
    }
}
