//! The symbolic analysis of a network's matrix, done once: EPANET's adjacency lists, the fill
//! pattern of the factor in the elimination order, the order in which each column receives
//! its updates, and the dense tails of the columns.

use super::{SymbolicError, Update, DENSE_TAIL_MIN, NO_COLUMN};

/// The updates each column receives, in the order George & Liu's left-looking factorization
/// (and so EPANET) applies them: a column joins the list of the row of its first unused entry
/// when it is finished or has updated a column, at the head of that list.
pub(super) fn update_schedule(
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
pub(super) fn dense_tails(column_start: &[usize], entry_row: &[usize]) -> Vec<bool> {
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
pub(super) struct JunctionNeighbours {
    /// Junction neighbours of each junction, most recently added link first.
    pub lists: Vec<Vec<usize>>,
    /// For each link joining two distinct junctions, the first link joining the same pair.
    pub merged_into: Vec<Option<usize>>,
    /// Nodes the links join (junctions and fixed-head nodes): one more than the largest.
    pub nodes: usize,
}

/// Builds EPANET's adjacency lists: links in file order, each new neighbour put in front of
/// a node's list, a link parallel to an earlier one (same end nodes, either direction)
/// merged into it rather than listed.
pub(super) fn junction_neighbours(
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
pub(super) fn factor_pattern(
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
