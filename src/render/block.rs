//! The report's building block: what [`super::document`] lays out and [`super::markup`]
//! writes as Markdown and as HTML alike.

/// A piece of the report, rendered to Markdown and to HTML alike.
pub enum Block {
    /// A heading of this level.
    Heading(u8, String),
    /// A paragraph (may hold `code` spans).
    Para(String),
    /// A table: header and rows.
    Table(Vec<String>, Vec<Vec<String>>),
    /// A table that may run long, near the top of the report: in HTML it scrolls in a box of
    /// limited height, so that what follows it stays within reach; in Markdown a table.
    TallTable(Vec<String>, Vec<Vec<String>>),
    /// A plot: its file name and caption.
    Plot(String, String),
    /// A bulleted list.
    List(Vec<String>),
}

/// `text` fit for an HTML or SVG attribute, or a `<title>`: `&`, `<`, `>` and `"` escaped.
pub fn attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What separates a table cell's text from its tooltip in [`titled`].
const TITLE: char = '\u{1f}';

/// A table cell with a tooltip: `text` everywhere, `title` too in HTML (the whole interval
/// behind a compact figure, say), where the pointer rests on the cell.
pub fn titled(text: &str, title: &str) -> String {
    if title.is_empty() {
        return text.to_owned();
    }
    format!("{text}{TITLE}{title}")
}

/// A cell's text and its tooltip, if [`titled`] gave it one.
pub fn untitled(cell: &str) -> (&str, Option<&str>) {
    match cell.split_once(TITLE) {
        Some((text, title)) => (text, Some(title)),
        None => (cell, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_titled_cell_splits_back_into_text_and_tooltip() {
        let cell = titled("189.6k ±1 %", "95 % interval 187.9k–191.5k");
        assert_eq!(
            untitled(&cell),
            ("189.6k ±1 %", Some("95 % interval 187.9k–191.5k"))
        );
        assert_eq!(untitled("plain"), ("plain", None));
        assert_eq!(titled("x", ""), "x");
    }
}
