//! Column-aligned tables as Consul's commands print them (the `columnize` package with
//! its defaults): every cell trimmed, each column but the last padded to its widest cell
//! (counted in characters) and followed by two spaces, rows joined by newlines, no
//! newline after the last row.

/// Format `rows` (the header first) as an aligned table.
pub fn columnize(rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.trim().chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let cell = cell.trim();
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn pads_all_but_the_last_column() {
        let table = columnize(&[
            row(&["Node", "Address", "Status"]),
            row(&["a-long-name", "10.0.0.1:8301", "alive"]),
            row(&["b", " 1.2.3.4:1 ", "failed"]),
        ]);
        assert_eq!(
            table,
            "Node         Address        Status\n\
             a-long-name  10.0.0.1:8301  alive\n\
             b            1.2.3.4:1      failed"
        );
    }

    #[test]
    fn empty_trailing_cells_keep_their_padding() {
        let table = columnize(&[row(&["ab", "c", "d"]), row(&["x", "", ""])]);
        assert_eq!(table, "ab  c  d\nx      ");
        assert_eq!(columnize(&[]), "");
        assert_eq!(
            columnize(&[row(&["één", "x"]), row(&["a", "y"])]),
            "één  x\na    y"
        );
    }
}
