//! Settings sections of `.inp` files: `[ENERGY]`, `[REPORT]`, `[TIMES]` and `[OPTIONS]`.

use super::lex;
use super::reader::{fault, line_fault, Fault, LineResult, Reader};
use crate::model::*;
use crate::units::M_PER_FT;

/// Smallest gap EPANET allows between required and minimum pressure (`MINPDIFF`).
const MIN_PRESSURE_DIFFERENCE: f64 = 0.1;

impl Reader<'_> {
    /// `GLOBAL`/`PUMP id` `PRICE|PATTERN|EFFIC value`, or `DEMAND CHARGE value`.
    pub(super) fn energy(&mut self, t: &[&str]) -> LineResult {
        let n = t.len();
        if n < 3 {
            return Err(line_fault(201));
        }
        if lex::matches(t[0], "DEMAN") {
            match lex::number(t[2]) {
                None => return Err(fault(202, t[2])),
                Some(y) if y < 0.0 => return Err(fault(213, t[2])),
                Some(y) => self.net.energy.demand_charge = y,
            }
            return Ok(());
        }
        let pump = if lex::matches(t[0], "GLOB") {
            None
        } else if lex::matches(t[0], "PUMP") {
            if n < 4 {
                return Err(line_fault(201));
            }
            match self.find_link(t[1]) {
                Some(k) if matches!(self.link_kind(k), Some(LinkKind::Pump(_))) => Some(k),
                _ => return Err(fault(216, t[1])),
            }
        } else {
            return Err(fault(213, t[0]));
        };
        let (keyword, value) = (t[n - 2], t[n - 1]);
        if lex::matches(keyword, "PRICE") {
            let y = lex::number(value).ok_or_else(|| fault(202, value))?;
            if y < 0.0 {
                return Err(fault(217, value));
            }
            match pump {
                None => self.net.energy.global_price = y,
                Some(k) => self.with_pump(k, |p| p.energy_price = Some(y)),
            }
        } else if lex::matches(keyword, "PATT") {
            let pattern = self.find_pattern(value)?;
            match pump {
                None => self.net.energy.global_pattern = Some(pattern),
                Some(k) => self.with_pump(k, |p| p.price_pattern = Some(pattern)),
            }
        } else if lex::matches(keyword, "EFFI") {
            match pump {
                None => match lex::number(value) {
                    None => return Err(fault(202, value)),
                    Some(y) if y <= 0.0 => return Err(fault(217, value)),
                    Some(y) => self.net.energy.global_efficiency = y,
                },
                Some(k) => {
                    let curve = self.find_curve(value)?;
                    self.with_pump(k, |p| p.efficiency_curve = Some(curve));
                }
            }
        } else {
            return Err(line_fault(201));
        }
        Ok(())
    }

    fn with_pump(&mut self, link: usize, change: impl FnOnce(&mut Pump)) {
        if let Some(Link {
            kind: LinkKind::Pump(pump),
            ..
        }) = self.net.links.get_mut(link)
        {
            change(pump);
        }
    }

    /// Checks the `[REPORT]` lines EPANET checks (the line itself is kept as written).
    pub(super) fn report(&mut self, t: &[&str]) -> LineResult {
        let n = t.len() - 1;
        if n < 1 {
            return Err(line_fault(201));
        }
        if lex::matches(t[0], "PAGE") {
            match lex::number(t[n]) {
                None => return Err(fault(202, t[n])),
                Some(y) if !(0.0..=255.0).contains(&y) => return Err(fault(213, t[n])),
                Some(_) => {}
            }
        } else if lex::matches(t[0], "NODE")
            && !lex::matches(t[n], "NONE")
            && !lex::matches(t[n], "ALL")
        {
            for &id in &t[1..] {
                self.node_or(id, 203)?;
            }
        } else if lex::matches(t[0], "LINK")
            && !lex::matches(t[n], "NONE")
            && !lex::matches(t[n], "ALL")
        {
            for &id in &t[1..] {
                self.find_link(id).ok_or_else(|| fault(204, id))?;
            }
        }
        Ok(())
    }

    /// A `[TIMES]` line: a time in decimal hours, `h:mm[:ss]`, or with units or AM/PM.
    pub(super) fn time(&mut self, t: &[&str]) -> LineResult {
        let n = t.len() - 1;
        if n < 1 {
            return Err(line_fault(201));
        }
        if lex::matches(t[0], "STAT") {
            let value = t[n];
            self.net.times.statistic = if lex::matches(value, "NONE") || lex::matches(value, "NO") {
                Statistic::None
            } else if lex::matches(value, "AVERAGE") {
                Statistic::Average
            } else if lex::matches(value, "MINIMUM") {
                Statistic::Minimum
            } else if lex::matches(value, "MAXIMUM") {
                Statistic::Maximum
            } else if lex::matches(value, "RANGE") {
                Statistic::Range
            } else {
                return Err(fault(213, value));
            };
            return Ok(());
        }
        let mut extra = false;
        let hours = match lex::number(t[n]) {
            Some(y) => y,
            None => lex::hours(t[n], "", &mut extra)
                .or_else(|| lex::hours(t[n - 1], t[n], &mut extra))
                .ok_or_else(|| fault(213, t[n - 1]))?,
        };
        // EPANET's bound: twice the time in seconds must fit in a 64-bit long.
        if !(hours >= 0.0 && hours < i64::MAX as f64 / 7200.0) {
            return Err(fault(213, t[n]));
        }
        if extra {
            self.note(&format!(
                "time '{}' has more than three fields; EPANET ignores the extra ones",
                t[n]
            ));
        }
        let seconds = (3600.0 * hours + 0.5) as u64;
        let times = &mut self.net.times;
        let step_or_start = |target: &str| -> Result<bool, Fault> {
            let word = t.get(1).copied().unwrap_or("");
            if lex::matches(word, "TIME") {
                Ok(true)
            } else if lex::matches(word, "STAR") {
                Ok(false)
            } else {
                Err(fault(213, if word.is_empty() { target } else { word }))
            }
        };
        if lex::matches(t[0], "DURA") {
            times.duration = seconds;
        } else if lex::matches(t[0], "HYDR") {
            times.hydraulic_step = seconds;
        } else if lex::matches(t[0], "QUAL") {
            times.quality_step = (seconds > 0).then_some(seconds);
        } else if lex::matches(t[0], "RULE") {
            times.rule_step = (seconds > 0).then_some(seconds);
        } else if lex::matches(t[0], "MINI") {
            // MINIMUM TRAVELTIME: no longer used by EPANET.
        } else if lex::matches(t[0], "PATT") {
            if step_or_start(t[0])? {
                times.pattern_step = seconds;
            } else {
                times.pattern_start = seconds;
            }
        } else if lex::matches(t[0], "REPO") {
            if step_or_start(t[0])? {
                times.report_step = seconds;
            } else {
                times.report_start = seconds;
            }
        } else if lex::matches(t[0], "STAR") {
            times.start_clocktime = seconds % 86_400;
        } else {
            return Err(fault(213, t[0]));
        }
        Ok(())
    }

    /// An `[OPTIONS]` line: a named choice first, else a number (as EPANET tries them).
    pub(super) fn option(&mut self, t: &[&str], data: &str) -> LineResult {
        match self.option_choice(t, data)? {
            true => Ok(()),
            false => self.option_value(t, data),
        }
    }

    /// Options whose value is a keyword or an id. `Ok(false)` when the line is not one.
    fn option_choice(&mut self, t: &[&str], data: &str) -> Result<bool, Fault> {
        let n = t.len() - 1;
        let value = t.get(1).copied().unwrap_or("");
        let options = &mut self.net.options;
        let keyword = t[0];
        if lex::matches(keyword, "UNIT") {
            if n >= 1 {
                options.flow_units = flow_units(value).ok_or_else(|| fault(213, value))?;
            }
        } else if lex::matches(keyword, "PRESSURE") {
            if n < 1 {
                return Ok(true);
            }
            if lex::matches(value, "EXP") {
                return Ok(false);
            }
            options.pressure_units = Some(pressure_units(value).ok_or_else(|| fault(213, value))?);
        } else if lex::matches(keyword, "HEADL") {
            if n >= 1 {
                options.headloss = headloss_formula(value).ok_or_else(|| fault(213, value))?;
            }
        } else if lex::matches(keyword, "HYDR") {
            if n >= 2 && !lex::matches(value, "USE") && !lex::matches(value, "SAVE") {
                return Err(fault(213, value));
            }
            options.other.push(data.to_string());
        } else if lex::matches(keyword, "QUAL") {
            if n >= 1 && lex::matches(value, "TRACE") {
                let node = t.get(2).ok_or_else(|| line_fault(201))?;
                self.node_or(node, 212)?;
            }
            self.net.options.other.push(data.to_string());
        } else if lex::matches(keyword, "MAP") || lex::matches(keyword, "VERI") {
            options.other.push(data.to_string());
        } else if lex::matches(keyword, "UNBA") {
            if n < 1 {
                return Ok(true);
            }
            options.unbalanced = if lex::matches(value, "STOP") {
                Unbalanced::Stop
            } else if lex::matches(value, "CONT") {
                let extra = t.get(2).map(|s| lex::leading_integer(s)).unwrap_or(0);
                Unbalanced::Continue(u32::try_from(extra).unwrap_or(0))
            } else {
                return Err(fault(213, value));
            };
        } else if lex::matches(keyword, "PATT") {
            if n >= 1 {
                options.default_pattern = Some(value.to_string());
            }
        } else if lex::matches(keyword, "DEMAND") {
            if n < 2 {
                return Ok(true);
            }
            if !lex::matches(value, "MODEL") {
                return Ok(false);
            }
            options.demand_model = if lex::matches(t[2], "DDA") {
                DemandModel::Dda
            } else if lex::matches(t[2], "PDA") {
                DemandModel::Pda
            } else {
                return Err(fault(213, t[2]));
            };
        } else if lex::matches(keyword, "BACK") {
            if n < 2 {
                return Ok(true);
            }
            if !lex::matches(value, "ALLOW") {
                return Ok(false);
            }
            options.emitter_backflow = if lex::matches(t[2], "YES") {
                true
            } else if lex::matches(t[2], "NO") {
                false
            } else {
                return Err(fault(213, t[2]));
            };
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// Options whose value is a number (EPANET's `optionvalue`).
    fn option_value(&mut self, t: &[&str], data: &str) -> LineResult {
        let n = t.len() - 1;
        let keyword = t[0];
        let options = &mut self.net.options;
        if lex::matches(keyword, "SEGM") {
            options.other.push(data.to_string());
            return Ok(());
        }
        let two_words = ["SPEC", "EMIT", "DEMAND", "MINI", "REQ", "PRESSURE", "PREC"];
        let at = if two_words.iter().any(|w| lex::matches(keyword, w)) {
            2
        } else {
            1
        };
        if n < at {
            return Ok(());
        }
        let y = lex::number(t[at]).ok_or_else(|| fault(202, t[at]))?;
        let invalid = || fault(213, t[at]);
        if lex::matches(keyword, "TOLER") || lex::matches(keyword, "DIFF") {
            if y < 0.0 {
                return Err(invalid());
            }
            options.other.push(data.to_string());
            return Ok(());
        }
        if lex::matches(keyword, "DAMPLIMIT") {
            options.damp_limit = y;
            return Ok(());
        }
        if lex::matches(keyword, "FLOWCHANGE") || lex::matches(keyword, "HEADERROR") {
            if y < 0.0 {
                return Err(invalid());
            }
            if lex::matches(keyword, "FLOWCHANGE") {
                options.flow_change = y;
            } else {
                options.head_error = y;
            }
            return Ok(());
        }
        if lex::matches(keyword, "MINI") {
            if y < 0.0 {
                return Err(invalid());
            }
            // Like EPANET: a required pressure still at its default follows the minimum.
            if options.required_pressure == MIN_PRESSURE_DIFFERENCE {
                options.required_pressure = y + MIN_PRESSURE_DIFFERENCE;
            } else if options.required_pressure - y < MIN_PRESSURE_DIFFERENCE {
                return Err(fault(208, t[at]));
            }
            options.minimum_pressure = y;
            return Ok(());
        }
        if lex::matches(keyword, "REQ") {
            if y < 0.0 {
                return Err(invalid());
            }
            if y - options.minimum_pressure < MIN_PRESSURE_DIFFERENCE {
                return Err(fault(208, t[at]));
            }
            options.required_pressure = y;
            return Ok(());
        }
        if lex::matches(keyword, "PRESSURE") {
            if y <= 0.0 {
                return Err(invalid());
            }
            options.pressure_exponent = y;
            return Ok(());
        }
        if y <= 0.0 {
            return Err(invalid());
        }
        let integer = || -> Result<u32, Fault> {
            if y < 1.0 || y > f64::from(i32::MAX) {
                Err(fault(213, t[at]))
            } else {
                Ok(y as u32)
            }
        };
        if lex::matches(keyword, "VISC") {
            options.viscosity = y;
        } else if lex::matches(keyword, "SPEC") {
            options.specific_gravity = y;
        } else if lex::matches(keyword, "TRIAL") {
            options.trials = integer()?;
        } else if lex::matches(keyword, "ACCU") {
            // EPANET clamps the accuracy when it reads it.
            options.accuracy = y.clamp(1e-5, 1e-1);
        } else if lex::matches(keyword, "HTOL") || lex::matches(keyword, "QTOL") {
            options.other.push(data.to_string());
        } else if lex::matches(keyword, "RQTOL") {
            if y >= 1.0 {
                return Err(invalid());
            }
            options.other.push(data.to_string());
        } else if lex::matches(keyword, "CHECKFREQ") {
            options.check_freq = integer()?;
        } else if lex::matches(keyword, "MAXCHECK") {
            options.max_check = integer()?;
        } else if lex::matches(keyword, "EMIT") {
            options.emitter_exponent = y;
        } else if lex::matches(keyword, "DEMAND") {
            options.demand_multiplier = y;
        } else {
            return Err(line_fault(201));
        }
        Ok(())
    }
}

/// EPANET reads a viscosity up to 1e-3 as a kinematic viscosity (ft2/s or m2/s, by the flow
/// units in force at the end of the file) and a larger one as relative to water at 20 C.
pub(super) fn relative_viscosity(options: &Options) -> f64 {
    const WATER_FT2_PER_S: f64 = 1.1e-5;
    let value = options.viscosity;
    if value > 1e-3 {
        return value;
    }
    let ft2_per_s = if options.flow_units.is_us() {
        value
    } else {
        value / (M_PER_FT * M_PER_FT)
    };
    ft2_per_s / WATER_FT2_PER_S
}

fn flow_units(token: &str) -> Option<FlowUnits> {
    [
        ("CFS", FlowUnits::Cfs),
        ("GPM", FlowUnits::Gpm),
        ("AFD", FlowUnits::Afd),
        ("MGD", FlowUnits::Mgd),
        ("IMGD", FlowUnits::Imgd),
        ("LPS", FlowUnits::Lps),
        ("LPM", FlowUnits::Lpm),
        ("CMH", FlowUnits::Cmh),
        ("CMD", FlowUnits::Cmd),
        ("MLD", FlowUnits::Mld),
        ("CMS", FlowUnits::Cms),
        ("SI", FlowUnits::Lps),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, units)| units)
}

fn pressure_units(token: &str) -> Option<PressureUnits> {
    [
        ("PSI", PressureUnits::Psi),
        ("KPA", PressureUnits::Kpa),
        ("METERS", PressureUnits::Meters),
        ("BAR", PressureUnits::Bar),
        ("FEET", PressureUnits::Feet),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, units)| units)
}

fn headloss_formula(token: &str) -> Option<HeadlossFormula> {
    [
        ("H-W", HeadlossFormula::HazenWilliams),
        ("D-W", HeadlossFormula::DarcyWeisbach),
        ("C-M", HeadlossFormula::ChezyManning),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, formula)| formula)
}
