//! Column layout for the wizard's lists: fits a table into the terminal's width by dropping
//! the least important columns first and shortening the one flexible column.
//!
//! A table at 200 columns shows everything; at 40 it keeps the number, the name and the size.
//! This module lays out plain strings; styling and selection markers are the view's business.

/// A column's description.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The heading.
    pub header: &'static str,
    /// Columns with the highest number are dropped first; 0 is never dropped.
    pub drop_order: u8,
    /// This column takes whatever width is left, and is shortened when space is short.
    pub flex: bool,
}

/// Space between columns.
const GAP: usize = 2;
/// The flexible column keeps at least this many columns before others are dropped.
const FLEX_MIN: usize = 16;

/// A laid-out table: the heading row and one string per data row, each at most `width` wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The heading row.
    pub header: String,
    /// One string per data row, in order.
    pub rows: Vec<String>,
}

/// Lays out `rows` (one cell per column) into `width` columns; `ellipsis` marks shortened cells.
pub fn layout(columns: &[Column], rows: &[Vec<String>], width: usize, ellipsis: char) -> Table {
    let natural: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let widest = rows.iter().filter_map(|r| r.get(i)).map(|s| s.chars().count()).max().unwrap_or(0);
            widest.max(c.header.chars().count())
        })
        .collect();
    let mut kept: Vec<usize> = (0..columns.len()).collect();
    let needed = |kept: &[usize]| -> usize {
        let cells: usize =
            kept.iter().map(|&i| if columns[i].flex { natural[i].min(FLEX_MIN) } else { natural[i] }).sum();
        cells + GAP * kept.len().saturating_sub(1)
    };
    while needed(&kept) > width {
        let droppable = kept.iter().enumerate().filter(|(_, &i)| columns[i].drop_order > 0);
        match droppable.max_by_key(|(_, &i)| columns[i].drop_order) {
            Some((at, _)) => {
                kept.remove(at);
            }
            None => break,
        }
    }
    let fixed: usize = kept.iter().filter(|&&i| !columns[i].flex).map(|&i| natural[i]).sum();
    let spare = width.saturating_sub(fixed + GAP * kept.len().saturating_sub(1));
    let widths: Vec<usize> =
        kept.iter().map(|&i| if columns[i].flex { natural[i].min(spare) } else { natural[i] }).collect();
    let render = |cell: &dyn Fn(usize) -> String| -> String {
        let cells: Vec<String> =
            kept.iter().zip(&widths).map(|(&i, &w)| pad(&shorten(&cell(i), w, ellipsis), w)).collect();
        cells.join(&" ".repeat(GAP)).trim_end().to_string()
    };
    Table {
        header: render(&|i| columns[i].header.to_string()),
        rows: rows.iter().map(|r| render(&|i| r.get(i).cloned().unwrap_or_default())).collect(),
    }
}

/// `text` cut to `width` columns, the last one replaced by `ellipsis` when something was cut.
pub fn shorten(text: &str, width: usize, ellipsis: char) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        out.push(ellipsis);
    }
    out
}

fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: [Column; 4] = [
        Column { header: "#", drop_order: 0, flex: false },
        Column { header: "Name", drop_order: 0, flex: true },
        Column { header: "Size", drop_order: 1, flex: false },
        Column { header: "Serial", drop_order: 2, flex: false },
    ];

    fn rows() -> Vec<Vec<String>> {
        vec![vec!["1".into(), "debian-12-generic-amd64.img.zst".into(), "512.0 MiB".into(), "SN0001".into()]]
    }

    #[test]
    fn wide_terminal_shows_every_column_in_full() {
        let t = layout(&COLS, &rows(), 200, '~');
        assert_eq!(t.header, "#  Name                             Size       Serial");
        assert_eq!(t.rows[0], "1  debian-12-generic-amd64.img.zst  512.0 MiB  SN0001");
    }

    #[test]
    fn narrow_terminal_drops_columns_by_order_then_shortens_the_flexible_one() {
        let t = layout(&COLS, &rows(), 40, '~');
        assert_eq!(t.rows[0], "1  debian-12-generic~  512.0 MiB  SN0001");
        assert!(t.rows[0].chars().count() <= 40);
        let t = layout(&COLS, &rows(), 20, '~');
        assert_eq!(t.rows[0], "1  debian-12-generi~");
    }

    #[test]
    fn zero_width_never_panics() {
        let t = layout(&COLS, &rows(), 0, '~');
        assert_eq!(t.rows.len(), 1);
        assert_eq!(shorten("abc", 0, '~'), "");
    }
}
