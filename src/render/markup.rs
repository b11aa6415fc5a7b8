//! The report's [`Block`]s written out: as Markdown (`report.md`) and as one self-contained
//! HTML file (`report.html`, plots inline).

use std::fmt::Write as _;

use super::block::Block;
use super::plots::Plot;
use crate::schema::Summary;

/// The report as Markdown.
pub fn markdown(doc: &[Block]) -> String {
    let mut out = String::new();
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "{} {text}\n", "#".repeat(*level as usize));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "{text}\n");
            }
            Block::Table(header, rows) => markdown_table(&mut out, header, rows),
            Block::Plot(file, caption) => {
                let _ = writeln!(out, "![{caption}]({file})\n");
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {item}");
                }
                out.push('\n');
            }
        }
    }
    out
}

fn markdown_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", " --- |".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// The report as one self-contained HTML file, SVGs inline.
pub fn html(doc: &[Block], plots: &[Plot], s: &Summary) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>echobench: {} profile on {}</title>\n<style>\n{}\n</style>\n</head>\n<body>\n",
        esc(s.environment.profile.name()),
        esc(&s.environment.hostname),
        CSS
    );
    for block in doc {
        match block {
            Block::Heading(level, text) => {
                let _ = writeln!(out, "<h{level}>{}</h{level}>", inline(text));
            }
            Block::Para(text) => {
                let _ = writeln!(out, "<p>{}</p>", inline(text));
            }
            Block::Table(header, rows) => html_table(&mut out, header, rows),
            Block::Plot(file, caption) => {
                let svg = plots
                    .iter()
                    .find(|p| &p.file == file)
                    .map_or("", |p| p.svg.as_str());
                let _ = writeln!(
                    out,
                    "<figure>\n{svg}\n<figcaption>{}</figcaption>\n</figure>",
                    inline(caption)
                );
            }
            Block::List(items) => {
                out += "<ul>\n";
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", inline(item));
                }
                out += "</ul>\n";
            }
        }
    }
    out += "</body>\n</html>\n";
    out
}

fn html_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    *out += "<table>\n<thead><tr>";
    for h in header {
        let _ = write!(out, "<th>{}</th>", inline(h));
    }
    *out += "</tr></thead>\n<tbody>\n";
    for row in rows {
        *out += "<tr>";
        for c in row {
            let _ = write!(out, "<td>{}</td>", inline(c));
        }
        *out += "</tr>\n";
    }
    *out += "</tbody>\n</table>\n";
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}\
th:first-child,td:first-child{text-align:left}\
th{background:#f3f3f3}\
code{background:#f3f3f3;padding:0 .2rem}\
figure{margin:1.5rem 0}figcaption{font-size:.9rem;color:#555}\
svg{max-width:100%;height:auto}";

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes text and turns `code` and *emphasis* spans into HTML.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in esc(text).split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(out, "<code>{part}</code>");
        } else {
            for (j, piece) in part.split('*').enumerate() {
                if j % 2 == 1 {
                    let _ = write!(out, "<em>{piece}</em>");
                } else {
                    out += piece;
                }
            }
        }
    }
    out
}
