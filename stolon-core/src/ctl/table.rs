//! Tab-aligned tables as stolon prints them (Go's `text/tabwriter` with minwidth 0, tabwidth 8, padding 1
//! and tabs as padding): each column is as wide as its widest cell plus one, rounded up to a multiple of 8,
//! and filled with tabs. Cells are tab-terminated; the text after a row's last tab is not aligned.

const TAB_WIDTH: usize = 8;
const PADDING: usize = 1;

/// Renders rows of tab-terminated cells plus an unaligned tail (`(cells, tail)`), one line per row.
///
/// Column `j` of a row is aligned with the same column of the adjacent rows that also have a cell `j`
/// (a run of such rows forms one block), which is how Go's tabwriter lays out a table flushed once.
pub fn render(rows: &[(Vec<String>, String)]) -> String {
    let mut widths: Vec<Vec<usize>> = rows.iter().map(|(cells, _)| vec![0; cells.len()]).collect();
    let max_cols = rows.iter().map(|(cells, _)| cells.len()).max().unwrap_or(0);
    for col in 0..max_cols {
        let mut start = 0;
        while start < rows.len() {
            if rows[start].0.len() <= col {
                start += 1;
                continue;
            }
            let end = (start..rows.len()).find(|&i| rows[i].0.len() <= col).unwrap_or(rows.len());
            let width = (start..end).map(|i| rows[i].0[col].chars().count() + PADDING).max().unwrap_or(0);
            let width = width.div_ceil(TAB_WIDTH) * TAB_WIDTH;
            for row_widths in &mut widths[start..end] {
                row_widths[col] = width;
            }
            start = end;
        }
    }
    let mut out = String::new();
    for ((cells, tail), row_widths) in rows.iter().zip(&widths) {
        for (cell, width) in cells.iter().zip(row_widths) {
            out.push_str(cell);
            let pad = width - cell.chars().count();
            out.extend(std::iter::repeat_n('\t', pad.div_ceil(TAB_WIDTH)));
        }
        out.push_str(tail);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str], tail: &str) -> (Vec<String>, String) {
        (cells.iter().map(|c| c.to_string()).collect(), tail.to_string())
    }

    #[test]
    fn columns_round_up_to_tab_stops() {
        let out = render(&[row(&["ID"], "LEADER"), row(&["0a1b2c3d"], "true"), row(&["s2"], "false")]);
        // "0a1b2c3d" + 1 = 9 -> 16 columns: two tabs after "ID", one after the 8-character UID.
        assert_eq!(out, "ID\t\tLEADER\n0a1b2c3d\ttrue\ns2\t\tfalse\n");
    }

    #[test]
    fn a_column_only_some_rows_have_is_aligned_among_those() {
        let out = render(&[
            row(&["UID", "HEALTHY"], "LAST"),
            row(&["k1", "true", "a-long-value"], ""),
            row(&["k2", "false", "x"], ""),
        ]);
        assert_eq!(out, "UID\tHEALTHY\tLAST\nk1\ttrue\ta-long-value\t\nk2\tfalse\tx\t\t\n");
    }
}
