//! The `[CONTROLS]` section (simple controls).

use super::links::is_gpv;
use super::{fault, line_fault, LineResult, Reader};
use crate::inp::lex;
use crate::model::*;

impl Reader<'_> {
    pub(super) fn control(&mut self, t: &[&str]) -> LineResult {
        let mut n = t.len();
        if n < 6 {
            return Err(line_fault(201));
        }
        let mut enabled = true;
        if lex::matches(t[n - 1], "DISABLED") {
            enabled = false;
            n -= 1;
        }
        let link = self.find_link(t[1]).ok_or_else(|| fault(204, t[1]))?;
        let kind = self.link_kind(link).cloned();
        let is_pump = matches!(kind, Some(LinkKind::Pump(_)));
        let is_pipe = matches!(kind, Some(LinkKind::Pipe(_)));
        if let Some(LinkKind::Pipe(Pipe {
            status: PipeStatus::CheckValve,
            ..
        })) = kind
        {
            return Err(fault(207, t[1]));
        }
        let action = if lex::matches(t[2], "OPEN") {
            LinkAction::Open
        } else if lex::matches(t[2], "CLOSED") {
            LinkAction::Closed
        } else if is_gpv(kind.as_ref()) {
            return Err(fault(207, t[1]));
        } else {
            let setting = lex::number(t[2]).ok_or_else(|| fault(202, t[2]))?;
            if (is_pump || is_pipe) && setting < 0.0 {
                return Err(fault(211, t[2]));
            }
            // EPANET uses only the status a number implies for a pipe: zero closes it.
            match (is_pipe, setting == 0.0) {
                (true, true) => LinkAction::Closed,
                (true, false) => LinkAction::Open,
                (false, _) => LinkAction::Setting(setting),
            }
        };
        let condition = if lex::matches(t[4], "TIME") || lex::matches(t[4], "CLOCKTIME") {
            let units = if n >= 7 { t[6] } else { "" };
            let mut extra = false;
            let h = lex::hours(t[5], units, &mut extra).ok_or_else(|| fault(213, t[5]))?;
            if !(0.0..1e15).contains(&h) {
                return Err(fault(213, t[5]));
            }
            if extra {
                self.note(&format!(
                    "time '{}' has more than three fields; EPANET ignores the extra ones",
                    t[5]
                ));
            }
            let seconds = (3600.0 * h + 0.5) as u64;
            if lex::matches(t[4], "TIME") {
                ControlCondition::AtTime(seconds)
            } else {
                ControlCondition::AtClockTime(seconds % 86_400)
            }
        } else {
            if n < 8 {
                return Err(line_fault(201));
            }
            let node = self.node_or(t[5], 203)?;
            let above = if lex::matches(t[6], "BELOW") {
                false
            } else if lex::matches(t[6], "ABOVE") {
                true
            } else {
                return Err(fault(213, t[6]));
            };
            let value = lex::number(t[7]).ok_or_else(|| fault(202, t[7]))?;
            if above {
                ControlCondition::NodeAbove { node, value }
            } else {
                ControlCondition::NodeBelow { node, value }
            }
        };
        self.net.controls.push(Control {
            link,
            action,
            condition,
            enabled,
        });
        Ok(())
    }
}
