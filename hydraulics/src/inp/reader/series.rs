//! Series sections: `[PATTERNS]` and `[CURVES]`.

use super::{fault, line_fault, LineResult, Reader};
use crate::inp::lex;
use crate::model::*;

impl Reader<'_> {
    pub(super) fn pattern(&mut self, t: &[&str]) -> LineResult {
        if t.len() < 2 {
            return Err(line_fault(201));
        }
        let index = match self.previous_pattern {
            Some(p) if self.net.patterns[p].id == t[0] => p,
            _ => self.find_pattern(t[0])?,
        };
        self.previous_pattern = Some(index);
        for &token in &t[1..] {
            let value = lex::number(token).ok_or_else(|| fault(202, token))?;
            self.net.patterns[index].multipliers.push(value);
        }
        Ok(())
    }

    pub(super) fn curve(&mut self, t: &[&str], comment: &str) -> LineResult {
        if t.len() < 3 {
            return Err(line_fault(201));
        }
        let x = lex::number(t[1]).ok_or_else(|| fault(202, t[1]))?;
        let y = lex::number(t[2]).ok_or_else(|| fault(202, t[2]))?;
        let index = match self.previous_curve {
            Some(c) if self.net.curves[c].id == t[0] => c,
            _ => {
                let c = self.find_curve(t[0])?;
                if self.stated_curve_kinds[c].is_none() {
                    self.stated_curve_kinds[c] = curve_kind_from_comment(comment);
                }
                c
            }
        };
        self.previous_curve = Some(index);
        self.net.curves[index].points.push((x, y));
        if let Some(kind) = t.get(3).and_then(|k| curve_kind_keyword(k)) {
            self.stated_curve_kinds[index] = Some(kind);
        }
        Ok(())
    }
}

/// Curve type keywords (EPANET's `CurveTypeTxt`, and the words the EPANET GUI writes in the
/// comment before a curve, e.g. `;PUMP: ...`).
fn curve_kind_keyword(token: &str) -> Option<CurveKind> {
    [
        ("VOLUME", CurveKind::Volume),
        ("PUMP", CurveKind::Pump),
        ("EFFIC", CurveKind::Efficiency),
        ("HEADLOSS", CurveKind::Headloss),
        ("GENERIC", CurveKind::Generic),
        ("VALVE", CurveKind::Valve),
    ]
    .into_iter()
    .find(|(word, _)| lex::matches(token, word))
    .map(|(_, kind)| kind)
}

/// The kind a comment such as `PUMP: Pump Curve for Pump 10` states (the word before `:`).
fn curve_kind_from_comment(comment: &str) -> Option<CurveKind> {
    let (word, _) = comment.split_once(':')?;
    let word = word.trim();
    let kind = curve_kind_keyword(word)?;
    // The whole word must be a type name (EFFICIENCY or EFFIC), not just start with one.
    let known = [
        "VOLUME",
        "PUMP",
        "EFFICIENCY",
        "EFFIC",
        "HEADLOSS",
        "GENERIC",
        "VALVE",
    ];
    known
        .iter()
        .any(|k| k.eq_ignore_ascii_case(word))
        .then_some(kind)
}
