//! The numeric work over a range of columns: a group's factorization with its forward
//! substitution ([`factor_part`]), the separator's ([`factor_separator`]), the updates a
//! column gathers, and a group's back substitution ([`Parts::backward_part`]).

use super::{Parts, Pattern, Update};

impl Parts {
    /// Solves `L' x = y` for a group's columns `columns`, whose values `own` holds (from the
    /// first of them), once the separator's values `separator` are known.
    pub(super) fn backward_part(
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
    pub(super) fn separator_terms(&self, row: usize) -> &[(u32, u32)] {
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
pub(super) fn factor_part<const SPLIT: bool>(
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
pub(super) fn factor_separator(
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
pub(super) fn add_scaled_dense(values: &[f64], first_row: usize, target: &mut [f64], factor: f64) {
    let target = &mut target[first_row..first_row + values.len()];
    for (target, &value) in target.iter_mut().zip(values) {
        *target += value * factor;
    }
}
