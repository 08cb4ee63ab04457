//! Node sections: `[JUNCTIONS]`, `[RESERVOIRS]`, `[TANKS]`, `[DEMANDS]`, `[EMITTERS]`, the
//! map and descriptive sections `[COORDINATES]`, `[LABELS]` and `[TAGS]`, and the node
//! references of the water-quality sections.

use super::{fault, line_fault, Fault, LineResult, Reader, Section};
use crate::inp::lex;
use crate::model::*;

impl Reader<'_> {
    pub(super) fn junction(&mut self, t: &[&str]) -> LineResult {
        let slot = self.junctions_added;
        self.add_node_id(t[0], slot)?;
        self.junctions_added += 1;
        let mut elevation = 0.0;
        let mut base = 0.0;
        let mut pattern = None;
        let mut result = Ok(());
        if let Some(&token) = t.get(1) {
            match lex::number(token) {
                Some(x) => elevation = x,
                None => result = Err(fault(202, token)),
            }
        }
        if let (Ok(()), Some(&token)) = (&result, t.get(2)) {
            match lex::number(token) {
                Some(x) => base = x,
                None => result = Err(fault(202, token)),
            }
        }
        if let (Ok(()), Some(&token)) = (&result, t.get(3)) {
            match self.find_pattern(token) {
                Ok(p) => pattern = Some(p),
                Err(f) => result = Err(f),
            }
        }
        let junction = Junction {
            elevation,
            demands: vec![Demand {
                base,
                pattern,
                category: None,
            }],
        };
        self.put_node(slot, new_node(t[0], NodeKind::Junction(junction)));
        result
    }

    pub(super) fn tank(&mut self, t: &[&str]) -> LineResult {
        let slot = self.junction_slots + self.sources_added;
        self.add_node_id(t[0], slot)?;
        self.sources_added += 1;
        let n = t.len();
        let mut elevation = 0.0;
        let mut pattern = None;
        let mut tank = Tank::default();
        let mut result = Ok(());
        if n < 2 {
            result = Err(line_fault(201));
        } else {
            match lex::number(t[1]) {
                Some(x) => elevation = x,
                None => result = Err(fault(202, t[1])),
            }
        }
        if n <= 3 {
            if n == 3 && result.is_ok() {
                match self.find_pattern(t[2]) {
                    Ok(p) => pattern = Some(p),
                    Err(f) => result = Err(f),
                }
            }
        } else if result.is_ok() {
            result = self.tank_values(t, &mut tank);
        }
        let kind = if tank.diameter == 0.0 {
            NodeKind::Reservoir(Reservoir {
                head: elevation,
                pattern,
            })
        } else {
            tank.elevation = elevation;
            NodeKind::Tank(tank)
        };
        self.put_node(slot, new_node(t[0], kind));
        result
    }

    fn tank_values(&self, t: &[&str], tank: &mut Tank) -> LineResult {
        if t.len() < 6 {
            return Err(line_fault(201));
        }
        let non_negative = |i: usize| -> Result<f64, Fault> {
            match lex::number(t[i]) {
                None => Err(fault(202, t[i])),
                Some(x) if x < 0.0 => Err(fault(209, t[i])),
                Some(x) => Ok(x),
            }
        };
        tank.initial_level = non_negative(2)?;
        tank.min_level = non_negative(3)?;
        tank.max_level = non_negative(4)?;
        tank.diameter = non_negative(5)?;
        if t.len() >= 7 {
            tank.min_volume = non_negative(6)?;
        }
        if let Some(&curve) = t.get(7) {
            if !curve.is_empty() && !curve.starts_with('*') {
                tank.volume_curve = Some(self.find_curve(curve)?);
            }
        }
        if let Some(&overflow) = t.get(8) {
            tank.overflow = if lex::matches(overflow, "YES") {
                true
            } else if lex::matches(overflow, "NO") {
                false
            } else {
                return Err(fault(213, overflow));
            };
        }
        Ok(())
    }

    pub(super) fn demand(&mut self, t: &[&str], comment: &str) -> LineResult {
        if t.len() < 2 {
            return Err(line_fault(201));
        }
        let base = lex::number(t[1]).ok_or_else(|| fault(202, t[1]))?;
        let node = self.node_or(t[0], 203)?;
        if !self.is_junction_slot(node) {
            return Ok(());
        }
        let pattern = match t.get(2) {
            Some(&p) => Some(self.find_pattern(p)?),
            None => None,
        };
        let category = (!comment.is_empty()).then(|| comment.to_string());
        let replace = self.replaced_demands.insert(node);
        if let Some(Some(Node {
            kind: NodeKind::Junction(junction),
            ..
        })) = self.nodes.get_mut(node)
        {
            match junction.demands.first_mut() {
                Some(first) if replace => {
                    first.base = base;
                    first.pattern = pattern;
                    if category.is_some() {
                        first.category = category;
                    }
                }
                _ => junction.demands.push(Demand {
                    base,
                    pattern,
                    category,
                }),
            }
        }
        Ok(())
    }

    pub(super) fn emitter(&mut self, t: &[&str]) -> LineResult {
        if t.len() < 2 {
            return Err(line_fault(201));
        }
        let node = self.node_or(t[0], 203)?;
        if !self.is_junction_slot(node) {
            return Ok(());
        }
        let k = lex::number(t[1]).ok_or_else(|| fault(202, t[1]))?;
        if k < 0.0 {
            return Err(fault(209, t[1]));
        }
        if let Some(Some(n)) = self.nodes.get_mut(node) {
            n.emitter_coefficient = k;
        }
        Ok(())
    }

    // ----- map and descriptive sections (EPANET ignores bad lines there) -----

    pub(super) fn coordinates(&mut self, t: &[&str]) {
        if t.len() < 3 {
            return;
        }
        let (Some(node), Some(x), Some(y)) =
            (self.find_node(t[0]), lex::number(t[1]), lex::number(t[2]))
        else {
            return;
        };
        if let Some(Some(n)) = self.nodes.get_mut(node) {
            n.coordinates = Some((x, y));
        }
    }

    pub(super) fn label(&mut self, t: &[&str]) {
        let (Some(x), Some(y)) = (
            t.first().and_then(|s| lex::number(s)),
            t.get(1).and_then(|s| lex::number(s)),
        ) else {
            return;
        };
        self.net.labels.push(Label {
            x,
            y,
            text: t.get(2).map(|s| s.to_string()).unwrap_or_default(),
            anchor: t.get(3).map(|s| s.to_string()),
        });
    }

    pub(super) fn tag(&mut self, t: &[&str]) {
        if t.len() < 3 {
            return;
        }
        let tag = Some(t[2].to_string());
        if lex::matches(t[0], "NODE") {
            if let Some(Some(node)) = self.find_node(t[1]).and_then(|i| self.nodes.get_mut(i)) {
                node.tag = tag;
            }
        } else if lex::matches(t[0], "LINK") {
            if let Some(link) = self.find_link(t[1]) {
                self.net.links[link].tag = tag;
            }
        }
    }

    /// Checks node references in the water-quality sections (their lines are kept verbatim).
    pub(super) fn quality_line(&mut self, section: Section, t: &[&str]) -> LineResult {
        match section {
            Section::Sources if t.len() < 2 => return Err(line_fault(201)),
            Section::Sources | Section::Mixing if t.len() >= 2 => {
                self.node_or(t[0], 203)?;
            }
            Section::Quality if t.len() == 2 => {
                self.node_or(t[0], 203)?;
                match lex::number(t[1]) {
                    None => return Err(fault(202, t[1])),
                    Some(c) if c < 0.0 => return Err(fault(209, t[1])),
                    Some(_) => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn new_node(id: &str, kind: NodeKind) -> Node {
    Node {
        id: id.to_string(),
        kind,
        coordinates: None,
        tag: None,
        emitter_coefficient: 0.0,
    }
}
