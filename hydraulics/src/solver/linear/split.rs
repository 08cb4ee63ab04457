//! The factorization shared between two threads without changing a single rounding.
//!
//! A column of `L` is updated only by its descendants in the elimination tree, so groups of
//! whole subtrees can be factorized at the same time: every column in them sees the same
//! updates in the same order as in EPANET's one pass. What is left, the separator (every
//! column above those subtrees), follows on one thread. The forward substitution that goes
//! with the factorization adds each finished column's terms to the right-hand side of later
//! rows; a separator row gets terms from several groups, so it gathers them instead, once all
//! groups are done, in EPANET's column order: the same additions in the same order.
//!
//! The columns are renumbered so that each group is a contiguous block (the groups, then the
//! separator), each keeping EPANET's relative order, and the threads work on disjoint
//! slices: each group is taken by whichever thread is free.

use super::{Parts, RawPattern, Update, NO_COLUMN};

/// Two parts cheaper than this (in the estimate below) are not worth a second thread.
pub(crate) const MIN_SPLIT_WORK: usize = 2_000;

/// Groups of subtrees the two threads take one at a time, largest first: enough for the
/// faster thread to take more of them when the other is slowed down (a busy core, a far
/// cache), few enough that taking one costs nothing next to its work.
const MAX_GROUPS: usize = 8;

/// Expanding the tree stops after this many separator columns.
const MAX_SEPARATOR_COLUMNS: usize = 4_096;

/// The new order of the columns: the groups, one after the other, then the separator.
pub(super) struct Split {
    /// Each column's new position, by EPANET's position.
    pub new_of_old: Vec<usize>,
    /// Group `g` is `group_start[g]..group_start[g + 1]`; the last bound is the separator's
    /// start.
    pub group_start: Vec<usize>,
}

/// Splits the columns into groups of whole subtrees of the elimination tree and the
/// separator above them, the separator chosen so that two threads would share the groups
/// best; `None` when the smaller thread's share would be below `min_smaller_part` (see
/// [`MIN_SPLIT_WORK`]).
pub(super) fn split_in_two(pattern: &RawPattern, min_smaller_part: usize) -> Option<Split> {
    let RawPattern {
        column_start,
        entry_row,
        update_start,
        updates,
    } = pattern;
    let columns = column_start.len() - 1;
    // A column's work: its entries (finished and substituted), the updates it gathers and the
    // entries they scatter.
    let work: Vec<usize> = (0..columns)
        .map(|c| {
            let gathered: usize = updates[update_start[c]..update_start[c + 1]]
                .iter()
                .map(|u| 2 + (u.end - u.first) as usize)
                .sum();
            3 + 2 * (column_start[c + 1] - column_start[c]) + gathered
        })
        .collect();
    // The parent of a column is the row of its first entry (rows ascend within a column).
    let parent: Vec<usize> = (0..columns)
        .map(|c| {
            if column_start[c] < column_start[c + 1] {
                entry_row[column_start[c]]
            } else {
                NO_COLUMN
            }
        })
        .collect();
    let mut children = vec![Vec::new(); columns];
    let mut subtree_work = work.clone();
    for c in 0..columns {
        if parent[c] != NO_COLUMN {
            // Parents come after their children, so each subtree is complete when added.
            subtree_work[parent[c]] += subtree_work[c];
            children[parent[c]].push(c);
        }
    }

    // Expand the heaviest subtree into the separator until the best balance is found.
    let mut frontier: Vec<usize> = (0..columns).filter(|&c| parent[c] == NO_COLUMN).collect();
    let mut separator = Vec::new();
    let mut separator_work = 0;
    let mut best: Option<(usize, usize, Vec<usize>)> = None;
    while !frontier.is_empty() && separator.len() <= MAX_SEPARATOR_COLUMNS {
        let shares = pack(&frontier, &subtree_work, 2);
        let (larger, smaller) = (shares[0].0.max(shares[1].0), shares[0].0.min(shares[1].0));
        let span = separator_work + larger;
        if best
            .as_ref()
            .is_none_or(|(best_span, ..)| span < *best_span)
            && smaller >= min_smaller_part
        {
            best = Some((span, separator.len(), frontier.clone()));
        }
        let heaviest = (0..frontier.len()).max_by_key(|&i| subtree_work[frontier[i]])?;
        let expanded = frontier.swap_remove(heaviest);
        separator.push(expanded);
        separator_work += work[expanded];
        if best
            .as_ref()
            .is_some_and(|(best_span, ..)| separator_work >= *best_span)
        {
            break;
        }
        frontier.extend_from_slice(&children[expanded]);
    }
    let (_, separator_len, frontier) = best?;

    // Group of each column: that of its subtree's root, the separator after the groups.
    let mut groups = pack(&frontier, &subtree_work, MAX_GROUPS.min(frontier.len()));
    groups.sort_by_key(|(work, _)| std::cmp::Reverse(*work));
    let separator_group = groups.len();
    let mut group = vec![usize::MAX; columns];
    for &c in &separator[..separator_len] {
        group[c] = separator_group;
    }
    for (g, (_, roots)) in groups.iter().enumerate() {
        for &root in roots {
            group[root] = g;
        }
    }
    // Parents come after children: walking down from the last column, a column not yet
    // placed takes its parent's group.
    for c in (0..columns).rev() {
        if group[c] == usize::MAX {
            group[c] = group[parent[c]];
        }
    }
    let mut new_of_old = vec![0; columns];
    let mut group_start = Vec::with_capacity(separator_group + 1);
    let mut next = 0;
    for wanted in 0..=separator_group {
        group_start.push(next);
        for c in 0..columns {
            if group[c] == wanted {
                new_of_old[c] = next;
                next += 1;
            }
        }
    }
    Some(Split {
        new_of_old,
        group_start,
    })
}

/// Packs the frontier's subtrees into `bins` bins, heaviest first into the lightest bin:
/// each bin's work and roots.
fn pack(frontier: &[usize], subtree_work: &[usize], bins: usize) -> Vec<(usize, Vec<usize>)> {
    let mut roots = frontier.to_vec();
    roots.sort_unstable_by_key(|&c| std::cmp::Reverse(subtree_work[c]));
    let mut packed = vec![(0, Vec::new()); bins.max(1)];
    for c in roots {
        if let Some(lightest) = packed.iter_mut().min_by_key(|(work, _)| *work) {
            lightest.0 += subtree_work[c];
            lightest.1.push(c);
        }
    }
    packed
}

/// The pattern in the split's numbering, with what the parts need: each column's entries in
/// the same order as before (so every update keeps its place), and for each separator row
/// the terms of its forward substitution in EPANET's column order. Dense-tail flags are left
/// for the caller to work out on the new rows.
pub(super) fn renumber(split: &Split, pattern: RawPattern) -> (RawPattern, Parts) {
    let Split {
        new_of_old,
        group_start,
    } = split;
    let separator_start = group_start.last().copied().unwrap_or(0);
    let columns = new_of_old.len();
    let mut old_of_new = vec![0; columns];
    for (old, &new) in new_of_old.iter().enumerate() {
        old_of_new[new] = old;
    }
    // Each old array is dropped as soon as the new one is built: on large networks the
    // pattern is most of the solver's memory.
    let RawPattern {
        column_start: old_start,
        entry_row: old_rows,
        update_start: old_update_start,
        updates: old_updates,
    } = pattern;
    let mut column_start = Vec::with_capacity(columns + 1);
    let mut entry_row = Vec::with_capacity(old_rows.len());
    column_start.push(0);
    for &old in &old_of_new {
        let rows = &old_rows[old_start[old]..old_start[old + 1]];
        entry_row.extend(rows.iter().map(|&row| new_of_old[row]));
        column_start.push(entry_row.len());
    }
    drop(old_rows);
    // An update's first entry is in an earlier column, found by its entry index; it keeps
    // its place within that column.
    let new_entry = |entry: usize| {
        let old = old_start.partition_point(|&start| start <= entry) - 1;
        column_start[new_of_old[old]] + (entry - old_start[old])
    };
    let mut update_start = Vec::with_capacity(columns + 1);
    let mut updates = Vec::with_capacity(old_updates.len());
    for &old in &old_of_new {
        update_start.push(updates.len());
        let column_updates = &old_updates[old_update_start[old]..old_update_start[old + 1]];
        updates.extend(column_updates.iter().map(|update| {
            let first = new_entry(update.first as usize);
            Update {
                first: first as u32,
                end: (first + (update.end - update.first) as usize) as u32,
                dense: false,
            }
        }));
    }
    update_start.push(updates.len());
    drop(old_updates);

    // Walking the columns in EPANET's order lists each separator row's terms in its order.
    let separator_rows = columns - separator_start;
    let mut row_terms: Vec<Vec<(u32, u32)>> = vec![Vec::new(); separator_rows];
    for &column in new_of_old {
        let start = column_start[column];
        let rows = &entry_row[start..column_start[column + 1]];
        for (entry, &row) in (start..).zip(rows) {
            if row >= separator_start {
                row_terms[row - separator_start].push((entry as u32, column as u32));
            }
        }
    }
    let mut term_start = Vec::with_capacity(separator_rows + 1);
    let mut terms = Vec::new();
    for row in row_terms {
        term_start.push(terms.len());
        terms.extend(row);
    }
    term_start.push(terms.len());

    let own_rows_end = (0..separator_start)
        .map(|c| {
            let rows = &entry_row[column_start[c]..column_start[c + 1]];
            column_start[c] + rows.partition_point(|&row| row < separator_start)
        })
        .collect();
    let parts = Parts {
        group_start: group_start.clone(),
        separator_start,
        own_rows_end,
        epanet_position: old_of_new,
        term_start,
        terms,
        second_pending: vec![0.0; columns],
    };
    let pattern = RawPattern {
        column_start,
        entry_row,
        update_start,
        updates,
    };
    (pattern, parts)
}
