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
    /// A plot: its file name and caption.
    Plot(String, String),
    /// A bulleted list.
    List(Vec<String>),
}
