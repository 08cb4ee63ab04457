//! The linear system of one Newton step: a sparse symmetric positive definite matrix over the
//! junctions, solved by Cholesky factorization exactly as EPANET 2.3 solves it.
//!
//! On networks with parts cut off from every source, closed links keep only a tiny
//! conductance and the matrix is nearly singular there: the heads, flows and statuses EPANET
//! reports in those parts are decided by round-off. Matching them needs EPANET's round-off,
//! so this reproduces its whole pipeline: the adjacency lists in its order (parallel links
//! merged into the first one), its multiple minimum degree numbering of the junctions
//! ([`super::ordering`]), the fill-in of the factor with row indices sorted within each
//! column, and its left-looking column Cholesky (George & Liu's GSFCT/GSSLV) with the same
//! order of every floating-point operation.
//!
//! The sparsity pattern depends only on which junctions links join, never on link status, so
//! it is analysed once per network. Coefficients are assembled straight into the factor's
//! storage (in the elimination order), and factorizing and solving allocate nothing.

use super::fork_join::{Helper, SharedSlice};
use super::ordering::minimum_degree_order;
use std::sync::atomic::{AtomicUsize, Ordering};

mod split;

pub(crate) use split::MIN_SPLIT_WORK;

/// Why the matrix pattern of a network cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SymbolicError {
    /// A link starts and ends at the same node (EPANET rejects such links when reading).
    #[error("link {link} starts and ends at the same node")]
    SelfLoop { link: usize },
    /// More junctions than the factor's 32-bit row indices can number.
    #[error("{junctions} junctions are more than the solver can number")]
    TooManyJunctions { junctions: usize },
}

/// Shortest dense tail worth a contiguous update (shorter ones keep the scattered loop,
/// whose branch then stays predictable on water networks' short columns).
const DENSE_TAIL_MIN: usize = 8;

/// Ends a list of columns in the factorization's work arrays.
const NO_COLUMN: usize = usize::MAX;

/// The junction matrix `A`, its right-hand side `F`, and the storage of its factor `L`.
#[derive(Clone)]
pub(crate) struct LinearSystem {
    /// Position of each junction in the elimination order, and the junction at each position.
    position: Vec<usize>,
    junction_at: Vec<usize>,
    pattern: Pattern,
    /// Where each link's coefficients go.
    link_slots: Vec<LinkSlots>,
    /// Nodes (junctions and fixed-head nodes) the links join.
    nodes: usize,
    /// Diagonal of `A` by position, then of `L`.
    diagonal: Vec<f64>,
    /// Off-diagonal coefficients of `A` (zero at fill-in entries), then of `L`.
    lower: Vec<f64>,
    /// Right-hand side by position, then the solution by position.
    rhs: Vec<f64>,
    /// Factorization work: updates accumulated for the current column, by row.
    pending_update: Vec<f64>,
    /// How the factorization is shared between two threads, when it is.
    parts: Option<Parts>,
}

/// The sparsity pattern of `L` and the order of the factorization's updates.
#[derive(Clone)]
struct Pattern {
    /// Strictly lower part of `L` by column (position), rows ascending within a column:
    /// the entries of column `c` are `column_start[c]..column_start[c + 1]`.
    column_start: Vec<usize>,
    /// 32-bit rows: half the memory traffic of the factorization's scattered loops.
    entry_row: Vec<u32>,
    /// For each entry, whether it starts a dense tail of its column: at least
    /// [`DENSE_TAIL_MIN`] entries to the column's end, in consecutive rows. The separators
    /// that minimum degree numbers last make such tails; their updates are contiguous slices
    /// the compiler vectorizes, with the same arithmetic, element by element, as the
    /// scattered updates.
    dense_tail: Vec<bool>,
    /// The updates each column receives from earlier columns, in the order EPANET applies
    /// them: column `c`'s are `updates[update_start[c]..update_start[c + 1]]`. The order
    /// follows from the pattern alone, so it is worked out once here instead of by walking
    /// linked lists in every factorization.
    update_start: Vec<usize>,
    updates: Vec<Update>,
}

/// The columns renumbered into independent groups of subtrees and the separator above them
/// (see [`split`]): group `g` is `group_start[g]..group_start[g + 1]`, the separator
/// `separator_start..`.
#[derive(Clone)]
struct Parts {
    group_start: Vec<usize>,
    separator_start: usize,
    /// For each column of the groups, the end of its entries in rows of its own group (the
    /// rest are separator rows).
    own_rows_end: Vec<usize>,
    /// Each column's position in EPANET's order, to report the pivot EPANET fails first.
    epanet_position: Vec<usize>,
    /// The forward substitution's terms of each separator row, in EPANET's column order:
    /// `(entry, column)` pairs, those of row `separator_start + s` at
    /// `terms[term_start[s]..term_start[s + 1]]`.
    term_start: Vec<usize>,
    terms: Vec<(u32, u32)>,
    /// Update work of the helper thread, by row.
    second_pending: Vec<f64>,
}

/// The pattern as it is built, before its rows are narrowed to 32 bits.
struct RawPattern {
    column_start: Vec<usize>,
    entry_row: Vec<usize>,
    update_start: Vec<usize>,
    updates: Vec<Update>,
}

/// Where one link's coefficients go in the system, looked up once per network (32-bit: the
/// assembly reads one of these per link in every iteration).
#[derive(Debug, Clone, Copy)]
struct LinkSlots {
    /// For a link joining two distinct junctions, its entry in `lower` (else [`NO_SLOT`]);
    /// parallel links share the entry of the first of them, as EPANET merges them into one
    /// coefficient.
    entry: u32,
    /// The positions of its end nodes ([`NO_SLOT`] for fixed-head nodes).
    from: u32,
    to: u32,
    /// Its end nodes.
    from_node: u32,
    to_node: u32,
}

/// Marks a link without an off-diagonal entry, or a fixed-head end.
const NO_SLOT: u32 = u32::MAX;

/// One earlier column's update of a column: `L[first]` is that column's entry in this
/// column's row; the entries after it, up to `end`, update the rows below.
#[derive(Debug, Clone, Copy)]
struct Update {
    first: u32,
    end: u32,
    /// The entries after `first` are a dense tail (see [`Pattern::dense_tail`]).
    dense: bool,
}

impl LinearSystem {
    /// Builds the pattern for `junctions` unknowns from each link's end nodes (nodes at or
    /// beyond `junctions` are fixed-head nodes and add nothing to the pattern). With
    /// `min_part`, the factorization is split for two threads when the smaller part's
    /// estimated work is at least that (see [`MIN_SPLIT_WORK`]); the results are the same to
    /// the bit either way.
    pub(crate) fn new(
        junctions: usize,
        link_ends: impl Iterator<Item = (usize, usize)>,
        min_part: Option<usize>,
    ) -> Result<Self, SymbolicError> {
        let link_ends: Vec<(usize, usize)> = link_ends.collect();
        let neighbours = junction_neighbours(junctions, &link_ends)?;
        let mut junction_at = minimum_degree_order(&neighbours.lists);
        let mut position = vec![0; junctions];
        for (at, &junction) in junction_at.iter().enumerate() {
            position[junction] = at;
        }
        let (column_start, entry_row) = factor_pattern(&neighbours.lists, &position, &junction_at);
        let dense_tail = dense_tails(&column_start, &entry_row);
        let (update_start, updates) = update_schedule(&column_start, &entry_row, &dense_tail);
        let mut pattern = RawPattern {
            column_start,
            entry_row,
            update_start,
            updates,
        };
        let mut parts = None;
        if let Some(split) = min_part.and_then(|min| split::split_in_two(&pattern, min)) {
            let (renumbered, new_parts) = split::renumber(&split, pattern);
            pattern = renumbered;
            for at in &mut position {
                *at = split.new_of_old[*at];
            }
            for (junction, &at) in position.iter().enumerate() {
                junction_at[at] = junction;
            }
            parts = Some(new_parts);
        }
        let RawPattern {
            column_start,
            entry_row,
            update_start,
            mut updates,
        } = pattern;
        let dense_tail = dense_tails(&column_start, &entry_row);
        for update in &mut updates {
            let (first, end) = (update.first as usize, update.end as usize);
            update.dense = first + 1 < end && dense_tail[first + 1];
        }

        let entry_of = |a: usize, b: usize| {
            let (column, row) = (position[a].min(position[b]), position[a].max(position[b]));
            let start = column_start[column];
            start + entry_row[start..column_start[column + 1]].partition_point(|&r| r < row)
        };
        // Entries, positions and nodes must fit the 32-bit slots and rows, below NO_SLOT.
        let entries = entry_row.len();
        if entries.max(neighbours.nodes) >= NO_SLOT as usize {
            return Err(SymbolicError::TooManyJunctions { junctions });
        }
        let at = |node: usize| position.get(node).map_or(NO_SLOT, |&at| at as u32);
        let link_slots = neighbours
            .merged_into
            .iter()
            .zip(&link_ends)
            .map(|(merged, &(from, to))| LinkSlots {
                entry: merged.map_or(NO_SLOT, |first| {
                    entry_of(link_ends[first].0, link_ends[first].1) as u32
                }),
                from: at(from),
                to: at(to),
                from_node: from as u32,
                to_node: to as u32,
            })
            .collect();
        // Rows are below the junction count, which fits (checked above).
        let entry_row = entry_row.iter().map(|&row| row as u32).collect();
        Ok(Self {
            position,
            junction_at,
            pattern: Pattern {
                column_start,
                entry_row,
                dense_tail,
                update_start,
                updates,
            },
            link_slots,
            nodes: neighbours.nodes,
            diagonal: vec![0.0; junctions],
            lower: vec![0.0; entries],
            rhs: vec![0.0; junctions],
            pending_update: vec![0.0; junctions],
            parts,
        })
    }

    /// Whether the factorization is split for two threads.
    pub(crate) fn is_split(&self) -> bool {
        self.parts.is_some()
    }

    /// Zeroes the matrix and the right-hand side.
    pub(crate) fn clear(&mut self) {
        self.diagonal.fill(0.0);
        self.lower.fill(0.0);
        self.rhs.fill(0.0);
    }

    /// Adds to the diagonal coefficient of a junction.
    pub(crate) fn add_diagonal(&mut self, junction: usize, value: f64) {
        self.diagonal[self.position[junction]] += value;
    }

    /// Adds to the right-hand side of a junction's equation.
    pub(crate) fn add_rhs(&mut self, junction: usize, value: f64) {
        self.rhs[self.position[junction]] += value;
    }

    /// Adds `values` (by junction, from the first) to the junctions' right-hand sides.
    pub(crate) fn add_to_rhs(&mut self, values: &[f64]) {
        for (&value, &at) in values.iter().zip(&self.position) {
            self.rhs[at] += value;
        }
    }

    /// Adds a node term to a junction's row: `diagonal` to its diagonal coefficient and `rhs`
    /// to its right-hand side (one position lookup for both).
    pub(crate) fn add_node_term(&mut self, junction: usize, diagonal: f64, rhs: f64) {
        let at = self.position[junction];
        self.diagonal[at] += diagonal;
        self.rhs[at] += rhs;
    }

    /// Adds to the off-diagonal coefficient of a link joining two junctions (no-op otherwise).
    pub(crate) fn add_off_diagonal(&mut self, link: usize, value: f64) {
        let entry = self.link_slots[link].entry;
        if entry != NO_SLOT {
            self.lower[entry as usize] += value;
        }
    }

    /// Adds each link's conductance `p` and head-loss term `y` (by link; links with a zero
    /// `p` are left out) to the rows of its end nodes: a junction's row gets `p` on its
    /// diagonal and `±y` on its right-hand side, and the other end's head times `p` when that
    /// end is a fixed-head node (`heads` by node). The same links' `flows` are taken from the
    /// flow excess `excess` (by node) of their start node and added to their end node's.
    /// `p` and `y` hold the links from link `first` on; `flows` holds every link's.
    pub(crate) fn add_links(
        &mut self,
        first: usize,
        p: &[f64],
        y: &[f64],
        heads: &[f64],
        flows: &[f64],
        excess: &mut [f64],
    ) {
        let Self {
            link_slots,
            lower,
            diagonal,
            rhs,
            nodes,
            ..
        } = self;
        assert!(
            heads.len() >= *nodes && excess.len() >= *nodes,
            "heads and flow excesses are needed for every node the links join"
        );
        let links = link_slots.get(first..).unwrap_or_default().iter();
        let flows = flows.get(first..).unwrap_or_default();
        for (((slots, &p), &y), &flow) in links.zip(p).zip(y).zip(flows) {
            if p == 0.0 {
                continue;
            }
            let LinkSlots {
                entry,
                from,
                to,
                from_node,
                to_node,
            } = *slots;
            let (n1, n2) = (from_node as usize, to_node as usize);
            // SAFETY (every access below): `new` sets `entry` to an entry of `lower` or
            // NO_SLOT, `from` and `to` to positions (below the junction count, the length of
            // `diagonal` and `rhs`) or NO_SLOT, and the end nodes below `nodes`, at most the
            // length of `heads` and `excess` (asserted above); the lengths never change.
            unsafe {
                *excess.get_unchecked_mut(n1) -= flow;
                *excess.get_unchecked_mut(n2) += flow;
                if entry != NO_SLOT {
                    *lower.get_unchecked_mut(entry as usize) += -p;
                }
                if from != NO_SLOT {
                    *diagonal.get_unchecked_mut(from as usize) += p;
                    *rhs.get_unchecked_mut(from as usize) += y;
                } else if to != NO_SLOT {
                    *rhs.get_unchecked_mut(to as usize) += p * *heads.get_unchecked(n1);
                }
                if to != NO_SLOT {
                    *diagonal.get_unchecked_mut(to as usize) += p;
                    *rhs.get_unchecked_mut(to as usize) += -y;
                } else if from != NO_SLOT {
                    *rhs.get_unchecked_mut(from as usize) += p * *heads.get_unchecked(n2);
                }
            }
        }
    }

    /// Factorizes `A` and solves `A x = F` into `x` (by junction), or returns the junction
    /// whose pivot was not positive (EPANET's ill-conditioning report), leaving `x` as it was.
    /// A split system shares its groups with `helper` when there is one.
    pub(crate) fn solve(&mut self, x: &mut [f64], helper: Option<&Helper>) -> Result<(), usize> {
        if let Err(column) = self.factorize_and_forward(helper) {
            return Err(self.junction_at[column]);
        }
        self.backward(helper);
        let rhs = &self.rhs;
        for (x, &position) in x.iter_mut().zip(&self.position) {
            // SAFETY: positions are below the junction count, the length of `rhs`.
            *x = unsafe { *rhs.get_unchecked(position) };
        }
        Ok(())
    }

    /// The factor's values (diagonal, then strictly lower part) left by the last successful
    /// [`Self::solve`], for [`Self::restore_factor`].
    pub(crate) fn factor(&self) -> (&[f64], &[f64]) {
        (&self.diagonal, &self.lower)
    }

    /// Puts back a factor taken with [`Self::factor`] from a system of the same pattern;
    /// `false`, changing nothing, when the lengths differ.
    pub(crate) fn restore_factor(&mut self, diagonal: &[f64], lower: &[f64]) -> bool {
        if diagonal.len() != self.diagonal.len() || lower.len() != self.lower.len() {
            return false;
        }
        self.diagonal.copy_from_slice(diagonal);
        self.lower.copy_from_slice(lower);
        true
    }

    /// Position of each junction in the elimination order (the order of
    /// [`Self::solve_factored`]'s values).
    pub(crate) fn positions(&self) -> &[usize] {
        &self.position
    }

    /// Solves `A x = b` in place in `values` (`b`, then `x`, by position; entries beyond the
    /// junction count are left alone) with the factor of the last successful [`Self::solve`],
    /// which must not have been cleared since: a linear response of the last Newton step's
    /// linearization, at the price of two substitutions.
    pub(crate) fn solve_factored(&self, values: &mut [f64]) {
        let Pattern {
            column_start,
            entry_row,
            ..
        } = &self.pattern;
        let (diagonal, lower) = (&self.diagonal, &self.lower);
        let columns = diagonal.len();
        let x = &mut values[..columns];
        let entries = column_start[columns];
        let (rows, lower) = (&entry_row[..entries], &lower[..entries]);
        let separator_start = self.parts.as_ref().map_or(columns, |p| p.separator_start);
        // SAFETY (both passes): `column_start` holds one more element than there are columns,
        // ascending up to `entries`, the length of `rows` and `lower` (checked just above), and
        // every row is below the junction count, the length of `x` (all built together in
        // `new`). This runs once per predicted period on a small system, where bounds checks
        // would cost as much as the arithmetic.
        unsafe {
            let mut start = *column_start.get_unchecked(0);
            for column in 0..separator_start {
                let end = *column_start.get_unchecked(column + 1);
                let own_end = match &self.parts {
                    Some(parts) => parts.own_rows_end[column],
                    None => end,
                };
                let value = *x.get_unchecked(column) / *diagonal.get_unchecked(column);
                *x.get_unchecked_mut(column) = value;
                // A zero (a junction without demand, not reached yet) changes nothing below:
                // `x - l 0` is `x`.
                if value != 0.0 {
                    for entry in start..own_end {
                        let row = *rows.get_unchecked(entry) as usize;
                        *x.get_unchecked_mut(row) -= *lower.get_unchecked(entry) * value;
                    }
                }
                start = end;
            }
            if let Some(parts) = &self.parts {
                // Separator rows gather the same terms in the same order.
                for column in separator_start..columns {
                    let mut sum = *x.get_unchecked(column);
                    for &(entry, from) in parts.separator_terms(column) {
                        let value = *x.get_unchecked(from as usize);
                        if value != 0.0 {
                            sum -= *lower.get_unchecked(entry as usize) * value;
                        }
                    }
                    *x.get_unchecked_mut(column) = sum / *diagonal.get_unchecked(column);
                }
            }
            let mut end = entries;
            for column in (0..columns).rev() {
                let start = *column_start.get_unchecked(column);
                let mut value = *x.get_unchecked(column);
                for entry in start..end {
                    let row = *rows.get_unchecked(entry) as usize;
                    value -= *lower.get_unchecked(entry) * *x.get_unchecked(row);
                }
                *x.get_unchecked_mut(column) = value / *diagonal.get_unchecked(column);
                end = start;
            }
        }
    }

    /// Overwrites `A` with `L` (`A = L L'`) and solves `L y = F` in place in `rhs`; returns
    /// the column whose pivot is not positive, the first one in EPANET's order.
    fn factorize_and_forward(&mut self, helper: Option<&Helper>) -> Result<(), usize> {
        let Self {
            pattern,
            diagonal,
            lower,
            rhs,
            pending_update,
            parts,
            ..
        } = self;
        let columns = diagonal.len();
        let Some(parts) = parts else {
            return factor_part::<false>(
                pattern,
                &[],
                0..columns,
                0,
                diagonal,
                lower,
                rhs,
                pending_update,
            );
        };
        let Parts {
            group_start,
            separator_start,
            own_rows_end,
            epanet_position,
            second_pending,
            ..
        } = parts;
        let separator_start = *separator_start;
        let (diagonal, lower, rhs) = (
            SharedSlice::new(diagonal),
            SharedSlice::new(lower),
            SharedSlice::new(rhs),
        );
        let pattern = &*pattern;
        let next_group = AtomicUsize::new(0);
        // Takes groups until none is left; the failed column EPANET would meet first.
        let factor_groups = |pending: &mut [f64]| {
            let mut failed: Option<usize> = None;
            loop {
                let group = next_group.fetch_add(1, Ordering::Relaxed);
                let Some(&end) = group_start.get(group + 1) else {
                    return failed;
                };
                let columns = group_start[group]..end;
                let entries =
                    pattern.column_start[columns.start]..pattern.column_start[columns.end];
                // SAFETY: the counter gives each group to one thread, and a group's columns
                // (of `diagonal` and `rhs`: its own rows' substitution stays in its rows) and
                // entries (of `lower`) belong to it alone; the arrays outlive the join.
                let (group_diagonal, group_lower, group_rhs) = unsafe {
                    (
                        diagonal.range_mut(columns.clone()),
                        lower.range_mut(entries.clone()),
                        rhs.range_mut(columns.clone()),
                    )
                };
                let outcome = factor_part::<true>(
                    pattern,
                    own_rows_end,
                    columns,
                    entries.start,
                    group_diagonal,
                    group_lower,
                    group_rhs,
                    pending,
                );
                if let Err(column) = outcome {
                    let earlier = |other: usize| epanet_position[column] < epanet_position[other];
                    if failed.is_none_or(earlier) {
                        failed = Some(column);
                    }
                }
            }
        };
        let (first, second) = match helper {
            Some(helper) => helper.join(
                || factor_groups(pending_update),
                || factor_groups(second_pending),
            ),
            None => (factor_groups(pending_update), None),
        };
        // EPANET stops at the first pivot that fails in its order, which may be a separator
        // column before a failed column of a group.
        let parts = self.parts.as_ref().expect("split above");
        let failed = [first, second]
            .into_iter()
            .flatten()
            .min_by_key(|&column| parts.epanet_position[column]);
        let separator_end = match failed {
            None => columns,
            Some(column) => {
                let limit = parts.epanet_position[column];
                separator_start
                    + parts.epanet_position[separator_start..].partition_point(|&p| p < limit)
            }
        };
        factor_separator(
            &self.pattern,
            parts,
            separator_start..separator_end,
            &mut self.diagonal,
            &mut self.lower,
            &mut self.rhs,
            &mut self.pending_update,
        )?;
        failed.map_or(Ok(()), Err)
    }

    /// Solves `L' x = y` in place in `rhs`; a split system solves its separator first, then
    /// its groups, shared with `helper` when there is one.
    fn backward(&mut self, helper: Option<&Helper>) {
        let Pattern {
            column_start,
            entry_row,
            ..
        } = &self.pattern;
        let (diagonal, lower, rhs) = (&self.diagonal, &self.lower, &mut self.rhs);
        let separator_start = self.parts.as_ref().map_or(0, |parts| parts.separator_start);
        let columns = diagonal.len();
        // SAFETY: `column_start` holds one more element than there are columns (the length
        // of `diagonal` and `rhs`); a column's range in it is within `lower` and `entry_row`,
        // and rows are below the junction count.
        unsafe {
            let mut end = *column_start.get_unchecked(columns);
            for column in (separator_start..columns).rev() {
                let start = *column_start.get_unchecked(column);
                let mut value = *rhs.get_unchecked(column);
                for entry in start..end {
                    let row = *entry_row.get_unchecked(entry) as usize;
                    value -= *lower.get_unchecked(entry) * *rhs.get_unchecked(row);
                }
                *rhs.get_unchecked_mut(column) = value / *diagonal.get_unchecked(column);
                end = start;
            }
        }
        let Some(parts) = &self.parts else {
            return;
        };
        let columns = rhs.len();
        let rhs = SharedSlice::new(rhs);
        let next_group = AtomicUsize::new(0);
        let group_start = &parts.group_start;
        let solve_groups = || loop {
            let group = next_group.fetch_add(1, Ordering::Relaxed);
            let Some(&end) = group_start.get(group + 1) else {
                return;
            };
            let own_columns = group_start[group]..end;
            // SAFETY: the counter gives each group to one thread; a group's values belong
            // to it alone, and the separator's are only read here; `rhs` outlives the join.
            let (own, separator) = unsafe {
                (
                    rhs.range_mut(own_columns.clone()),
                    rhs.range(separator_start..columns),
                )
            };
            parts.backward_part(&self.pattern, own_columns, diagonal, lower, own, separator);
        };
        match helper {
            Some(helper) => {
                helper.join(solve_groups, solve_groups);
            }
            None => solve_groups(),
        }
    }
}

impl Parts {
    /// Solves `L' x = y` for a group's columns `columns`, whose values `own` holds (from the
    /// first of them), once the separator's values `separator` are known.
    fn backward_part(
        &self,
        pattern: &Pattern,
        columns: std::ops::Range<usize>,
        diagonal: &[f64],
        lower: &[f64],
        own: &mut [f64],
        separator: &[f64],
    ) {
        let Pattern {
            column_start,
            entry_row,
            ..
        } = pattern;
        let base = columns.start;
        for column in columns.rev() {
            let (start, own_end, end) = (
                column_start[column],
                self.own_rows_end[column],
                column_start[column + 1],
            );
            let mut value = own[column - base];
            // SAFETY (both loops): a column's range in `column_start` is within `lower` and
            // `entry_row`; its rows before `own_end` are of its own group, held by `own` from
            // `base`, and the rest are separator rows, held by `separator`.
            for entry in start..own_end {
                unsafe {
                    let row = *entry_row.get_unchecked(entry) as usize;
                    value -= *lower.get_unchecked(entry) * *own.get_unchecked(row - base);
                }
            }
            for entry in own_end..end {
                unsafe {
                    let row = *entry_row.get_unchecked(entry) as usize;
                    value -= *lower.get_unchecked(entry)
                        * *separator.get_unchecked(row - self.separator_start);
                }
            }
            own[column - base] = value / diagonal[column];
        }
    }

    /// The forward substitution's `(entry, column)` terms of separator row `row`.
    fn separator_terms(&self, row: usize) -> &[(u32, u32)] {
        let s = row - self.separator_start;
        &self.terms[self.term_start[s]..self.term_start[s + 1]]
    }
}

/// Factorizes the consecutive columns `columns`, each gathering the updates of the earlier
/// columns that reach it, and does the forward substitution as each column is finished.
/// `diagonal` and `rhs` start at the first of these columns, `lower` at entry `entry_base`;
/// `pending` is by row. With `SPLIT`, the columns are a group of a split system: only earlier
/// columns of the same group update them, and terms for separator rows (from `own_rows_end`
/// on) are left for [`factor_separator`] to gather.
///
/// The forward substitution of a column needs only that column of `L` and the earlier
/// columns' contributions to its row, so doing it as soon as the column is finished
/// applies the same operations in the same order as a separate pass would, while the
/// column is still in cache.
#[allow(clippy::too_many_arguments)]
#[inline]
fn factor_part<const SPLIT: bool>(
    pattern: &Pattern,
    own_rows_end: &[usize],
    columns: std::ops::Range<usize>,
    entry_base: usize,
    diagonal: &mut [f64],
    lower: &mut [f64],
    rhs: &mut [f64],
    pending: &mut [f64],
) -> Result<(), usize> {
    let Pattern {
        column_start,
        entry_row,
        dense_tail,
        update_start,
        updates,
    } = pattern;
    let column_base = columns.start;
    for column in columns {
        // SAFETY: `column_start` and `update_start` hold one more element than there are
        // columns, and their ranges lie within `entry_row`, `dense_tail` and `updates` (built
        // together in `new`); `diagonal` and `rhs` hold this group's columns from
        // `column_base`, `lower` its entries from `entry_base`.
        let (start, end, column_updates) = unsafe {
            let update_range =
                *update_start.get_unchecked(column)..*update_start.get_unchecked(column + 1);
            (
                *column_start.get_unchecked(column),
                *column_start.get_unchecked(column + 1),
                updates.get_unchecked(update_range),
            )
        };
        // Only earlier columns of the same group update a column.
        let diagonal_update = gather_updates(column_updates, entry_row, lower, entry_base, pending);
        // SAFETY: as above.
        let pivot = unsafe { *diagonal.get_unchecked(column - column_base) } - diagonal_update;
        if pivot <= 0.0 {
            // The updates gathered for later rows must not leak into the next attempt.
            pending.fill(0.0);
            return Err(column);
        }
        let pivot = pivot.sqrt();
        // SAFETY: as above.
        let value = unsafe {
            *diagonal.get_unchecked_mut(column - column_base) = pivot;
            let value = rhs.get_unchecked_mut(column - column_base);
            *value /= pivot;
            *value
        };
        if start == end {
            continue;
        }
        let own_end = if SPLIT { own_rows_end[column] } else { end };
        // SAFETY: as above (`start < end`).
        let dense = unsafe { *dense_tail.get_unchecked(start) };
        if dense {
            let rows = &entry_row[start..end];
            let values = &mut lower[start - entry_base..end - entry_base];
            let first_row = rows[0] as usize;
            let pending = &mut pending[first_row..first_row + rows.len()];
            for (value, update) in values.iter_mut().zip(pending) {
                *value = (*value - *update) / pivot;
                *update = 0.0;
            }
            if own_end > start {
                // `x + l (-v)` rounds exactly as EPANET's `x - l v`.
                let own = &values[..own_end - start];
                add_scaled_dense(own, first_row - column_base, rhs, -value);
            }
        } else {
            let factor = -value;
            for entry in start..own_end {
                // SAFETY: `start..end` is a column's range in `column_start`, within
                // `entry_row` and, less `entry_base`, `lower`; rows are below the junction
                // count, the length of `pending`, and rows before `own_end` are of this
                // group, whose `rhs` starts at `column_base`.
                unsafe {
                    let row = *entry_row.get_unchecked(entry) as usize;
                    let value = lower.get_unchecked_mut(entry - entry_base);
                    let update = pending.get_unchecked_mut(row);
                    *value = (*value - *update) / pivot;
                    *update = 0.0;
                    // `x + l (-v)` rounds exactly as EPANET's `x - l v`.
                    *rhs.get_unchecked_mut(row - column_base) += *value * factor;
                }
            }
            if SPLIT {
                for entry in own_end..end {
                    // SAFETY: as above.
                    unsafe {
                        let row = *entry_row.get_unchecked(entry) as usize;
                        let value = lower.get_unchecked_mut(entry - entry_base);
                        let update = pending.get_unchecked_mut(row);
                        *value = (*value - *update) / pivot;
                        *update = 0.0;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Gathers a column's `updates` from earlier columns: each adds its entry's square to the
/// returned diagonal update and its entries below, times that entry, to `pending` (by row).
/// `lower` holds the entries from `entry_base`, and every update comes from a column whose
/// entries it holds.
#[inline(always)]
fn gather_updates(
    updates: &[Update],
    entry_row: &[u32],
    lower: &[f64],
    entry_base: usize,
    pending: &mut [f64],
) -> f64 {
    let mut diagonal_update = 0.0;
    for update in updates {
        let (first, end) = (update.first as usize, update.end as usize);
        // SAFETY: `update_schedule` makes `first < end <= column_start[k + 1]` for an
        // earlier column `k` whose entries `lower` holds (from `entry_base`), so every entry
        // below is one of `entry_row` and, less `entry_base`, of `lower`; every row is below
        // the junction count, the length of `pending`. Checked indexing here costs more than
        // the arithmetic on these one- and two-entry updates.
        let l_column_k = unsafe { *lower.get_unchecked(first - entry_base) };
        diagonal_update += l_column_k * l_column_k;
        if update.dense {
            let rest = first + 1;
            let first_row = entry_row[rest] as usize;
            let values = &lower[rest - entry_base..end - entry_base];
            add_scaled_dense(values, first_row, pending, l_column_k);
        } else {
            for entry in first + 1..end {
                // SAFETY: as above.
                unsafe {
                    let row = *entry_row.get_unchecked(entry) as usize;
                    *pending.get_unchecked_mut(row) +=
                        *lower.get_unchecked(entry - entry_base) * l_column_k;
                }
            }
        }
    }
    diagonal_update
}

/// Factorizes the separator columns `columns` of a split system once both parts are done:
/// each gathers its updates as in [`factor_part`], and its forward substitution gathers the
/// terms the finished columns would have added to its row, in EPANET's order.
fn factor_separator(
    pattern: &Pattern,
    parts: &Parts,
    columns: std::ops::Range<usize>,
    diagonal: &mut [f64],
    lower: &mut [f64],
    rhs: &mut [f64],
    pending: &mut [f64],
) -> Result<(), usize> {
    let Pattern {
        column_start,
        entry_row,
        update_start,
        updates,
        ..
    } = pattern;
    for column in columns {
        let column_updates = &updates[update_start[column]..update_start[column + 1]];
        let diagonal_update = gather_updates(column_updates, entry_row, lower, 0, pending);
        let pivot = diagonal[column] - diagonal_update;
        if pivot <= 0.0 {
            pending.fill(0.0);
            return Err(column);
        }
        let pivot = pivot.sqrt();
        diagonal[column] = pivot;
        let mut value = rhs[column];
        for &(entry, from) in parts.separator_terms(column) {
            // `x + l (-v)` rounds exactly as EPANET's `x - l v`.
            value += lower[entry as usize] * -rhs[from as usize];
        }
        rhs[column] = value / pivot;
        for entry in column_start[column]..column_start[column + 1] {
            let update = &mut pending[entry_row[entry] as usize];
            lower[entry] = (lower[entry] - *update) / pivot;
            *update = 0.0;
        }
    }
    Ok(())
}

/// `target[first_row + i] += values[i] * factor`: a dense tail of a column of `L` (its rows
/// consecutive from `first_row`) scaled into `target` as one contiguous slice.
fn add_scaled_dense(values: &[f64], first_row: usize, target: &mut [f64], factor: f64) {
    let target = &mut target[first_row..first_row + values.len()];
    for (target, &value) in target.iter_mut().zip(values) {
        *target += value * factor;
    }
}

/// The updates each column receives, in the order George & Liu's left-looking factorization
/// (and so EPANET) applies them: a column joins the list of the row of its first unused entry
/// when it is finished or has updated a column, at the head of that list.
fn update_schedule(
    column_start: &[usize],
    entry_row: &[usize],
    dense_tail: &[bool],
) -> (Vec<usize>, Vec<Update>) {
    let columns = column_start.len() - 1;
    let mut next_column = vec![NO_COLUMN; columns];
    let mut next_entry = vec![0; columns];
    let mut update_start = Vec::with_capacity(columns + 1);
    let mut updates = Vec::new();
    // Column `column`, next to be used at `entry`, joins the list of that entry's row.
    let join = |column: usize, entry: usize, lists: (&mut [usize], &mut [usize])| {
        let (next_column, next_entry) = lists;
        next_entry[column] = entry;
        let row = entry_row[entry];
        next_column[column] = next_column[row];
        next_column[row] = column;
    };
    for column in 0..columns {
        update_start.push(updates.len());
        let mut k = next_column[column];
        while k != NO_COLUMN {
            let following = next_column[k];
            let first = next_entry[k];
            let end = column_start[k + 1];
            updates.push(Update {
                first: first as u32,
                end: end as u32,
                dense: first + 1 < end && dense_tail[first + 1],
            });
            if first + 1 < end {
                join(k, first + 1, (&mut next_column, &mut next_entry));
            }
            k = following;
        }
        if column_start[column] < column_start[column + 1] {
            join(
                column,
                column_start[column],
                (&mut next_column, &mut next_entry),
            );
        }
    }
    update_start.push(updates.len());
    (update_start, updates)
}

/// For each entry, whether it starts a dense tail (see [`LinearSystem::dense_tail`]).
fn dense_tails(column_start: &[usize], entry_row: &[usize]) -> Vec<bool> {
    let mut dense = vec![false; entry_row.len()];
    for bounds in column_start.windows(2) {
        let end = bounds[1];
        // Entries from this one to the column's end, if their rows are consecutive, else 0.
        let mut tail = 0;
        for entry in (bounds[0]..end).rev() {
            let joins =
                entry + 1 == end || (tail > 0 && entry_row[entry + 1] == entry_row[entry] + 1);
            tail = if joins { tail + 1 } else { 0 };
            dense[entry] = tail >= DENSE_TAIL_MIN;
        }
    }
    dense
}

/// The junction graph as EPANET's sparse-matrix setup sees it.
struct JunctionNeighbours {
    /// Junction neighbours of each junction, most recently added link first.
    lists: Vec<Vec<usize>>,
    /// For each link joining two distinct junctions, the first link joining the same pair.
    merged_into: Vec<Option<usize>>,
    /// Nodes the links join (junctions and fixed-head nodes): one more than the largest.
    nodes: usize,
}

/// Builds EPANET's adjacency lists: links in file order, each new neighbour put in front of
/// a node's list, a link parallel to an earlier one (same end nodes, either direction)
/// merged into it rather than listed.
fn junction_neighbours(
    junctions: usize,
    link_ends: &[(usize, usize)],
) -> Result<JunctionNeighbours, SymbolicError> {
    let nodes = link_ends
        .iter()
        .map(|&(a, b)| a.max(b) + 1)
        .max()
        .unwrap_or(0)
        .max(junctions);
    // (neighbour, first link to it), in the order links were added.
    let mut adjacent: Vec<Vec<(usize, usize)>> = vec![Vec::new(); nodes];
    let mut merged_into = Vec::with_capacity(link_ends.len());
    for (link, &(a, b)) in link_ends.iter().enumerate() {
        if a == b {
            return Err(SymbolicError::SelfLoop { link });
        }
        let first = match adjacent[a].iter().find(|&&(node, _)| node == b) {
            Some(&(_, first)) => first,
            None => {
                adjacent[a].push((b, link));
                adjacent[b].push((a, link));
                link
            }
        };
        merged_into.push((a < junctions && b < junctions).then_some(first));
    }
    let lists = adjacent
        .iter()
        .take(junctions)
        .map(|list| {
            list.iter()
                .rev()
                .map(|&(node, _)| node)
                .filter(|&node| node < junctions)
                .collect()
        })
        .collect();
    Ok(JunctionNeighbours {
        lists,
        merged_into,
        nodes,
    })
}

/// The pattern of the strictly lower part of `L` in the elimination order, as column starts
/// and row indices ascending within each column: a column's rows are its later neighbours
/// plus the rows of the columns it absorbs in the elimination tree.
fn factor_pattern(
    neighbours: &[Vec<usize>],
    position: &[usize],
    junction_at: &[usize],
) -> (Vec<usize>, Vec<usize>) {
    let size = junction_at.len();
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); size];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); size];
    let mut seen_in = vec![usize::MAX; size];
    for column in 0..size {
        let mut rows = Vec::new();
        let later_neighbours = neighbours[junction_at[column]]
            .iter()
            .map(|&node| position[node])
            .filter(|&row| row > column);
        let from_children = children[column]
            .iter()
            .flat_map(|&child| rows_of[child].iter().copied())
            .filter(|&row| row != column);
        for row in later_neighbours.chain(from_children) {
            if seen_in[row] != column {
                seen_in[row] = column;
                rows.push(row);
            }
        }
        rows.sort_unstable();
        if let Some(&parent) = rows.first() {
            children[parent].push(column);
        }
        rows_of[column] = rows;
    }
    let mut column_start = Vec::with_capacity(size + 1);
    column_start.push(0);
    let mut entry_row = Vec::new();
    for rows in &rows_of {
        entry_row.extend_from_slice(rows);
        column_start.push(entry_row.len());
    }
    (column_start, entry_row)
}

#[cfg(test)]
mod tests;
