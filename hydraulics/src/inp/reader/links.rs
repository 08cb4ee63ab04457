//! Link sections: `[PIPES]`, `[PUMPS]`, `[VALVES]`, `[LEAKAGE]`, `[STATUS]` and the map
//! section `[VERTICES]`.

use super::{fault, line_fault, Fault, LineResult, Reader};
use crate::inp::lex;
use crate::model::*;

impl Reader<'_> {
    /// End nodes of a link line, checked as EPANET does. `None` for a line too short to
    /// define the link: EPANET 2.3.5 skips such a line without an error, and so do we (with
    /// a note).
    fn end_nodes(
        &mut self,
        t: &[&str],
        min_tokens: usize,
    ) -> Result<Option<(usize, usize)>, Fault> {
        if t.len() < min_tokens {
            self.note(&format!(
                "link line '{}' has too few values; ignored as EPANET does",
                t.join(" ")
            ));
            return Ok(None);
        }
        let from = self.node_or(t[1], 203)?;
        let to = self.node_or(t[2], 203)?;
        if from == to {
            return Err(fault(222, t[0]));
        }
        Ok(Some((from, to)))
    }

    pub(super) fn pipe(&mut self, t: &[&str]) -> LineResult {
        let Some((from, to)) = self.end_nodes(t, 3)? else {
            return Ok(());
        };
        self.add_link_id(t[0])?;
        let si = self.is_si();
        let mut pipe = Pipe {
            length: if si { 100.0 } else { 330.0 },
            diameter: if si { 254.0 } else { 10.0 },
            roughness: match self.net.options.headloss {
                HeadlossFormula::HazenWilliams => 130.0,
                HeadlossFormula::DarcyWeisbach => 0.0005,
                HeadlossFormula::ChezyManning => 0.01,
            },
            minor_loss: 0.0,
            status: PipeStatus::Open,
            leak_area: 0.0,
            leak_expansion: 0.0,
        };
        let result = pipe_values(t, &mut pipe);
        self.push_link(t[0], from, to, LinkKind::Pipe(pipe));
        result
    }

    pub(super) fn pump(&mut self, t: &[&str]) -> LineResult {
        let Some((from, to)) = self.end_nodes(t, 3)? else {
            return Ok(());
        };
        self.add_link_id(t[0])?;
        let mut pump = Pump {
            head_curve: None,
            power: None,
            speed: 1.0,
            pattern: None,
            efficiency_curve: None,
            energy_price: None,
            price_pattern: None,
        };
        let result = self.pump_values(t, &mut pump);
        self.push_link(t[0], from, to, LinkKind::Pump(pump));
        result
    }

    fn pump_values(&self, t: &[&str], pump: &mut Pump) -> LineResult {
        let mut m = 4;
        while m < t.len() {
            let (keyword, value) = (t[m - 1], t[m]);
            if lex::matches(keyword, "POWER") {
                match lex::number(value) {
                    Some(y) if y > 0.0 => {
                        pump.power = Some(y);
                        pump.head_curve = None;
                    }
                    _ => return Err(fault(202, value)),
                }
            } else if lex::matches(keyword, "HEAD") {
                pump.head_curve = Some(self.find_curve(value)?);
                pump.power = None;
            } else if lex::matches(keyword, "PATT") {
                pump.pattern = Some(self.find_pattern(value)?);
            } else if lex::matches(keyword, "SPEE") {
                match lex::number(value) {
                    Some(y) if y >= 0.0 => pump.speed = y,
                    _ => return Err(fault(202, value)),
                }
            } else {
                return Err(fault(201, keyword));
            }
            m += 2;
        }
        Ok(())
    }

    pub(super) fn valve(&mut self, t: &[&str]) -> LineResult {
        let Some((from, to)) = self.end_nodes(t, 5)? else {
            return Ok(());
        };
        let valve_type = valve_type(t[4]).ok_or_else(|| fault(213, t[4]))?;
        if let Some(code) = self.valve_connection_fault(valve_type, from, to) {
            return Err(match code {
                219 if !self.is_junction_slot(from) => fault(219, t[1]),
                219 => fault(219, t[2]),
                _ => line_fault(code),
            });
        }
        self.add_link_id(t[0])?;
        let mut valve = Valve {
            valve_type,
            diameter: if self.is_si() { 254.0 } else { 10.0 },
            setting: 0.0,
            curve: None,
            minor_loss: 0.0,
        };
        let result = self.valve_values(t, &mut valve);
        self.push_link(t[0], from, to, LinkKind::Valve(valve));
        result
    }

    fn valve_values(&self, t: &[&str], valve: &mut Valve) -> LineResult {
        match lex::number(t[3]) {
            Some(x) if x > 0.0 => valve.diameter = x,
            _ => return Err(fault(202, t[3])),
        }
        if let Some(&setting) = t.get(5) {
            if valve.valve_type == ValveType::Gpv {
                valve.curve = Some(self.find_curve(setting)?);
            } else {
                valve.setting = lex::number(setting).ok_or_else(|| fault(202, setting))?;
            }
        }
        if let Some(&loss) = t.get(6) {
            match lex::number(loss) {
                Some(x) if x >= 0.0 => valve.minor_loss = x,
                _ => return Err(fault(202, loss)),
            }
        }
        if let (Some(&curve), ValveType::Pcv) = (t.get(7), valve.valve_type) {
            valve.curve = Some(self.find_curve(curve)?);
            valve.setting = valve.setting.min(100.0);
        }
        Ok(())
    }

    /// EPANET's valve connection rules (error 219: pressure/flow valve at a tank or
    /// reservoir; 220: conflicting valves in series or sharing a node).
    fn valve_connection_fault(&self, kind: ValveType, from: usize, to: usize) -> Option<u32> {
        use ValveType::{Fcv, Prv, Psv};
        if !matches!(kind, Prv | Psv | Fcv) {
            return None;
        }
        if !self.is_junction_slot(from) || !self.is_junction_slot(to) {
            return Some(219);
        }
        for link in &self.net.links {
            let LinkKind::Valve(other) = &link.kind else {
                continue;
            };
            let (f, t) = (link.from, link.to);
            let conflict = match (other.valve_type, kind) {
                (Prv, Prv) => t == to || t == from || f == to,
                (Psv, Psv) => f == from || f == to || t == from,
                (Psv, Prv) => f == to,
                (Prv, Psv) => t == from,
                (Fcv, Psv) => t == from,
                (Fcv, Prv) => f == to,
                (Psv, Fcv) => f == to,
                (Prv, Fcv) => t == from,
                _ => false,
            };
            if conflict {
                return Some(220);
            }
        }
        None
    }

    pub(super) fn leakage(&mut self, t: &[&str]) -> LineResult {
        if t.len() < 3 {
            return Err(line_fault(201));
        }
        let link = self.find_link(t[0]).ok_or_else(|| fault(203, t[0]))?;
        let non_negative = |token: &str| match lex::number(token) {
            None => Err(fault(202, token)),
            Some(x) if x < 0.0 => Err(fault(209, token)),
            Some(x) => Ok(x),
        };
        let area = non_negative(t[1])?;
        let expansion = non_negative(t[2])?;
        if let Some(Link {
            kind: LinkKind::Pipe(pipe),
            ..
        }) = self.net.links.get_mut(link)
        {
            pipe.leak_area = area;
            pipe.leak_expansion = expansion;
        }
        Ok(())
    }

    pub(super) fn status(&mut self, t: &[&str]) -> LineResult {
        if self.net.links.is_empty() {
            return Err(fault(204, t[0]));
        }
        let n = t.len() - 1;
        if n < 1 {
            return Err(line_fault(201));
        }
        let spec = if lex::matches(t[n], "OPEN") {
            StatusSpec::Open
        } else if lex::matches(t[n], "CLOSED") {
            StatusSpec::Closed
        } else {
            match lex::number(t[n]) {
                None => return Err(fault(202, t[n])),
                Some(y) if y < 0.0 => return Err(fault(211, t[n])),
                Some(y) => StatusSpec::Value(y),
            }
        };
        if n == 1 {
            let link = self.find_link(t[0]).ok_or_else(|| fault(204, t[0]))?;
            let kind = self.link_kind(link);
            if matches!(
                kind,
                Some(LinkKind::Pipe(Pipe {
                    status: PipeStatus::CheckValve,
                    ..
                }))
            ) {
                return Err(fault(207, t[0]));
            }
            if is_gpv(kind) && matches!(spec, StatusSpec::Value(_)) {
                return Err(fault(207, t[0]));
            }
            set_initial_status(&mut self.net.links[link], spec);
            return Ok(());
        }
        let (low, high) = (lex::leading_integer(t[0]), lex::leading_integer(t[1]));
        for link in &mut self.net.links {
            let in_range = if low > 0 && high > 0 {
                (low..=high).contains(&lex::leading_integer(&link.id))
            } else {
                t[0] <= link.id.as_str() && t[1] >= link.id.as_str()
            };
            if in_range {
                set_initial_status(link, spec);
            }
        }
        Ok(())
    }

    // ----- map and descriptive sections (EPANET ignores bad lines there) -----

    pub(super) fn vertex(&mut self, t: &[&str]) {
        if t.len() < 3 {
            return;
        }
        if let (Some(link), Some(x), Some(y)) =
            (self.find_link(t[0]), lex::number(t[1]), lex::number(t[2]))
        {
            self.net.links[link].vertices.push((x, y));
        }
    }
}

fn pipe_values(t: &[&str], pipe: &mut Pipe) -> LineResult {
    let positive = |i: usize| match lex::number(t[i]) {
        Some(x) if x > 0.0 => Ok(x),
        _ => Err(fault(202, t[i])),
    };
    let minor_loss = |i: usize| match lex::number(t[i]) {
        Some(x) if x >= 0.0 => Ok(x),
        _ => Err(fault(202, t[i])),
    };
    let status = |token: &str| {
        if lex::matches(token, "CV") {
            Some(PipeStatus::CheckValve)
        } else if lex::matches(token, "CLOSED") {
            Some(PipeStatus::Closed)
        } else if lex::matches(token, "OPEN") {
            Some(PipeStatus::Open)
        } else {
            None
        }
    };
    if t.len() > 3 {
        pipe.length = positive(3)?;
    }
    if t.len() > 4 {
        pipe.diameter = positive(4)?;
    }
    if t.len() > 5 {
        pipe.roughness = positive(5)?;
    }
    if t.len() == 7 {
        match status(t[6]) {
            Some(s) => pipe.status = s,
            None => pipe.minor_loss = minor_loss(6)?,
        }
    }
    if t.len() > 7 {
        pipe.minor_loss = minor_loss(6)?;
        pipe.status = status(t[7]).ok_or_else(|| fault(213, t[7]))?;
    }
    Ok(())
}

pub(super) fn is_gpv(kind: Option<&LinkKind>) -> bool {
    matches!(
        kind,
        Some(LinkKind::Valve(Valve {
            valve_type: ValveType::Gpv,
            ..
        }))
    )
}

/// Records a `[STATUS]` entry where EPANET's `changestatus` has an effect: pipes and GPVs
/// take only OPEN/CLOSED, check valves nothing, pumps and other valves everything.
fn set_initial_status(link: &mut Link, spec: StatusSpec) {
    let applies = match &link.kind {
        LinkKind::Pipe(Pipe {
            status: PipeStatus::CheckValve,
            ..
        }) => false,
        LinkKind::Pipe(_)
        | LinkKind::Valve(Valve {
            valve_type: ValveType::Gpv,
            ..
        }) => !matches!(spec, StatusSpec::Value(_)),
        LinkKind::Pump(_) | LinkKind::Valve(_) => true,
    };
    if applies {
        link.initial_status = Some(spec);
    }
}

fn valve_type(token: &str) -> Option<ValveType> {
    [
        ("PRV", ValveType::Prv),
        ("PSV", ValveType::Psv),
        ("PBV", ValveType::Pbv),
        ("FCV", ValveType::Fcv),
        ("TCV", ValveType::Tcv),
        ("GPV", ValveType::Gpv),
        ("PCV", ValveType::Pcv),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, kind)| kind)
}
