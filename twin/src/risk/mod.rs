//! Likelihood of failure for predictive maintenance: a Weibull proportional-hazards survival
//! model of pipe breaks, fitted by maximum likelihood on the break history, and per-pipe
//! failure probabilities that carry their explanation.
//!
//! The time axis is pipe age `t` (years). A pipe with covariates `x` breaks with hazard
//!
//! `h(t | x) = (k / lambda) (t / lambda)^(k - 1) exp(beta . x)`
//!
//! where the covariates are material (one-hot against the most common material), the natural
//! logs of diameter (mm) and length (m), `ln(1 + n)` for the `n` breaks the pipe had so far in
//! the observation window, and, when the twin supplies them ([`TwinStats`]), mean and maximum
//! pressure (m) and transients per year.
//!
//! Breaks are recurrent events: each pipe's time under observation is split at its breaks into
//! intervals over which the break count is constant (the counting-process formulation), and a
//! pipe laid before the [`Window`] opens enters observation at its age then (left truncation).
//! [`fit`] maximises the likelihood by Newton-Raphson on standardised covariates and reports
//! standard errors from the observed information. [`WeibullPh::score`] gives each pipe the
//! probability of at least one break over a horizon and ranks the factors behind it against the
//! network's mean pipe.
//!
//! Input records come from CSV text ([`parse_assets`], [`parse_breaks`], [`parse_twin_stats`]);
//! the columns are documented in [`records`].

mod fit;
pub mod records;
mod score;

use std::collections::HashMap;
use std::fmt;

use thiserror::Error;

pub use fit::{fit, Coefficient, Covariate, Estimate, FitError, FitOptions, WeibullPh};
pub use records::{
    parse_assets, parse_breaks, parse_twin_stats, Asset, Break, CsvError, Date, TwinStats,
};
pub use score::{Contribution, PipeRisk, ScoreOptions};

/// The period over which breaks were recorded, whole days from `start` to `end` inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    start: Date,
    end: Date,
}

impl Window {
    /// The window from the first moment of `start` to the last of `end`; `None` when `end` is
    /// before `start`.
    pub fn new(start: Date, end: Date) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// First day.
    pub fn start(self) -> Date {
        self.start
    }

    /// Last day.
    pub fn end(self) -> Date {
        self.end
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} to {}", self.start, self.end)
    }
}

/// A factor behind a pipe's likelihood of failure: the time axis (age) or a group of
/// covariates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Factor {
    /// Pipe age (the model's time axis; it cannot be excluded).
    Age,
    /// Material (one covariate per material other than the reference).
    Material,
    /// Natural log of the diameter in mm.
    Diameter,
    /// Natural log of the length in m.
    Length,
    /// `ln(1 + n)`, `n` the breaks recorded on the pipe so far.
    PreviousBreaks,
    /// Mean pressure, m (from the twin).
    MeanPressure,
    /// Maximum pressure, m (from the twin).
    MaxPressure,
    /// Pressure transients per year (from the twin).
    Transients,
}

impl Factor {
    /// The factor's name in reports (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            Factor::Age => "age",
            Factor::Material => "material",
            Factor::Diameter => "diameter",
            Factor::Length => "length",
            Factor::PreviousBreaks => "previous_breaks",
            Factor::MeanPressure => "mean_pressure",
            Factor::MaxPressure => "max_pressure",
            Factor::Transients => "transients",
        }
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Records that do not fit together.
#[derive(Debug, Error, PartialEq)]
pub enum DataError {
    /// Breaks on pipes that are not in the asset register.
    #[error(
        "{} break(s) name pipes that are not in the assets: {}",
        .breaks.len(),
        list_lines(.breaks)
    )]
    UnknownPipes {
        /// `(line of the breaks file, pipe id)` of each such break.
        breaks: Vec<(usize, String)>,
    },
    /// A break dated before the year its pipe was laid.
    #[error(
        "breaks line {line}: pipe `{pipe}` broke on {date}, before it was laid in {install_year}"
    )]
    BreakBeforeInstall {
        /// Line of the breaks file.
        line: usize,
        /// Pipe id.
        pipe: String,
        /// Date of the break.
        date: Date,
        /// The pipe's install year.
        install_year: i32,
    },
    /// A break dated outside the observation window.
    #[error("breaks line {line}: pipe `{pipe}` broke on {date}, outside the observation window {window}")]
    BreakOutsideWindow {
        /// Line of the breaks file.
        line: usize,
        /// Pipe id.
        pipe: String,
        /// Date of the break.
        date: Date,
        /// The window.
        window: Window,
    },
    /// Twin statistics that do not cover exactly the assets.
    #[error(
        "twin statistics must cover every pipe exactly: missing for [{}], unknown pipes [{}]",
        .missing.join(", "),
        .unknown.join(", ")
    )]
    TwinStatsMismatch {
        /// Assets with no statistics.
        missing: Vec<String>,
        /// Statistics for pipes not in the assets.
        unknown: Vec<String>,
    },
    /// Scoring with a model that uses twin statistics on data that has none.
    #[error(
        "the model uses pressure and transient covariates but the data has no twin statistics"
    )]
    NoTwinStats,
}

fn list_lines(items: &[(usize, String)]) -> String {
    const SHOWN: usize = 10;
    let mut text: Vec<String> = items
        .iter()
        .take(SHOWN)
        .map(|(line, id)| format!("line {line} `{id}`"))
        .collect();
    if items.len() > SHOWN {
        text.push(format!("and {} more", items.len() - SHOWN));
    }
    text.join(", ")
}

/// One pipe with its breaks (as decimal years, sorted) and twin statistics.
#[derive(Debug, Clone)]
struct PipeHistory {
    asset: Asset,
    breaks: Vec<f64>,
    stats: Option<TwinStats>,
}

/// Assets, their break history over an observation window and, optionally, twin statistics,
/// checked for consistency.
#[derive(Debug, Clone)]
pub struct Dataset {
    pipes: Vec<PipeHistory>,
    window: Window,
    has_twin_stats: bool,
}

impl Dataset {
    /// Joins breaks to assets. Every break must name a known pipe, fall inside `window` and
    /// not precede the pipe's install year.
    pub fn new(assets: Vec<Asset>, breaks: &[Break], window: Window) -> Result<Self, DataError> {
        let index: HashMap<&str, usize> = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.as_str(), i))
            .collect();
        let unknown: Vec<(usize, String)> = breaks
            .iter()
            .filter(|b| !index.contains_key(b.pipe_id.as_str()))
            .map(|b| (b.line, b.pipe_id.clone()))
            .collect();
        if !unknown.is_empty() {
            return Err(DataError::UnknownPipes { breaks: unknown });
        }
        let mut per_pipe = vec![Vec::new(); assets.len()];
        for b in breaks {
            let i = index[b.pipe_id.as_str()];
            if b.date.year() < assets[i].install_year {
                return Err(DataError::BreakBeforeInstall {
                    line: b.line,
                    pipe: b.pipe_id.clone(),
                    date: b.date,
                    install_year: assets[i].install_year,
                });
            }
            if b.date < window.start || b.date > window.end {
                return Err(DataError::BreakOutsideWindow {
                    line: b.line,
                    pipe: b.pipe_id.clone(),
                    date: b.date,
                    window,
                });
            }
            per_pipe[i].push(b.date.decimal_year());
        }
        let pipes = assets
            .into_iter()
            .zip(per_pipe)
            .map(|(asset, mut breaks)| {
                breaks.sort_by(f64::total_cmp);
                PipeHistory {
                    asset,
                    breaks,
                    stats: None,
                }
            })
            .collect();
        Ok(Self {
            pipes,
            window,
            has_twin_stats: false,
        })
    }

    /// Adds the twin's per-pipe statistics, which must cover every asset and no other pipe.
    pub fn with_twin_stats(mut self, stats: Vec<TwinStats>) -> Result<Self, DataError> {
        let mut by_id: HashMap<String, TwinStats> =
            stats.into_iter().map(|s| (s.pipe_id.clone(), s)).collect();
        let mut missing = Vec::new();
        for pipe in &mut self.pipes {
            pipe.stats = by_id.remove(&pipe.asset.id);
            if pipe.stats.is_none() {
                missing.push(pipe.asset.id.clone());
            }
        }
        let mut unknown: Vec<String> = by_id.into_keys().collect();
        unknown.sort();
        if !missing.is_empty() || !unknown.is_empty() {
            return Err(DataError::TwinStatsMismatch { missing, unknown });
        }
        self.has_twin_stats = true;
        Ok(self)
    }

    /// The observation window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// Number of pipes.
    pub fn len(&self) -> usize {
        self.pipes.len()
    }

    /// Whether there are no pipes.
    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    /// Number of breaks.
    pub fn break_count(&self) -> usize {
        self.pipes.iter().map(|p| p.breaks.len()).sum()
    }

    /// Whether twin statistics were added.
    pub fn has_twin_stats(&self) -> bool {
        self.has_twin_stats
    }
}
