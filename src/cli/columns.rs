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

/// Go's `text/tabwriter` with a space pad character and no flags, as Consul's `kv get
/// -detailed` and `snapshot inspect` use it: a cell is text ended by a tab; a column's
/// width is its widest cell plus `padding` (at least `min_width`), computed per block
/// of consecutive lines that have that column; text after a line's last tab is not
/// padded.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    format_block(
        &lines,
        0,
        lines.len(),
        &mut Vec::new(),
        min_width,
        padding,
        &mut out,
    );
    out
}

/// Go's `Writer.format`: lines `from..to` with `widths` fixed for the columns before.
fn format_block(
    lines: &[Vec<&str>],
    mut from: usize,
    to: usize,
    widths: &mut Vec<usize>,
    min_width: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = from;
    while this < to {
        // Lines with a cell in this column: `column` tab-ended cells before the last.
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, from, this, widths, out);
        from = this;
        let mut width = min_width;
        while this < to && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, from, this, widths, min_width, padding, out);
        widths.pop();
        from = this;
    }
    write_lines(lines, from, to, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(width) = widths.get(j).filter(|_| j + 1 < line.len()) {
                let pad = width.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwrite_pads_columns_per_block_like_go() {
        // `consul kv get -detailed` (min width 0, padding 6).
        assert_eq!(
            tabwrite("CreateIndex\t5\nFlags\t0\nValue\tx", 0, 6),
            "CreateIndex      5\nFlags            0\nValue            x"
        );
        // A blank line ends a block; empty cells are padded; the last text is not.
        assert_eq!(
            tabwrite(" ID\tone\n Size\t2\n\n Type\tCount\tSize\n Total\t\t1B", 8, 6),
            " ID        one\n Size      2\n\n Type       Count      Size\n Total                 1B"
        );
    }

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
