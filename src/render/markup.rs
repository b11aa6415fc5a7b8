//! The report's [`Block`]s written out: as Markdown (`report.md`) and as one self-contained
//! HTML file (`report.html`, plots inline).

use std::fmt::Write as _;

use super::block::{attr, untitled, Block};
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
            Block::Table(header, rows) | Block::TallTable(header, rows) => {
                markdown_table(&mut out, header, rows);
            }
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
        let cells: Vec<String> = row
            .iter()
            .map(|c| untitled(c).0.replace('|', "\\|"))
            .collect();
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
            Block::TallTable(header, rows) => {
                out += "<div class=\"tall\">\n";
                html_table(&mut out, header, rows);
                out += "</div>\n";
            }
            Block::Plot(file, caption) => {
                let svg = plots
                    .iter()
                    .find(|p| &p.file == file)
                    .map_or("", |p| p.svg.as_str());
                let hint = match svg.contains("class=\"series\"") {
                    true => " (click a legend entry or a family to hide or show it; hover a point for its figures)",
                    false => "",
                };
                let id = file.trim_end_matches(".svg");
                let _ = writeln!(
                    out,
                    "<figure id=\"plot-{}\">\n{svg}\n<figcaption>{}{hint}</figcaption>\n</figure>",
                    attr(id),
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
    let _ = write!(out, "<script>\n{SCRIPT}\n</script>\n");
    out += "</body>\n</html>\n";
    out
}

/// What makes the plots explorable, with no network: a click on a legend entry hides or
/// shows its series (the group's class `off`), a click on a family's heading hides the
/// family's series, or shows them where all are hidden. Hovering a point shows its `<title>`.
/// `report.html?hide=blocking,event%20loops` opens with those models and families hidden,
/// `?plot=throughput-vs-connections` shows that plot alone, and `#plot-<file>` goes to a plot.
const SCRIPT: &str = r#"(function () {
  var only = /[?&]plot=([^&#]*)/.exec(location.search);
  var keep = only && document.getElementById('plot-' + decodeURIComponent(only[1]));
  if (keep) {
    Array.prototype.forEach.call(document.body.children, function (el) {
      if (el !== keep && el.tagName !== 'SCRIPT') el.style.display = 'none';
    });
  }
  var m = /[?&]hide=([^&#]*)/.exec(location.search);
  if (!m) return;
  var hide = decodeURIComponent(m[1]).split(',');
  Array.prototype.forEach.call(document.querySelectorAll('g.series'), function (g) {
    if (hide.indexOf(g.getAttribute('data-model')) >= 0 ||
        hide.indexOf(g.getAttribute('data-family')) >= 0) {
      g.classList.add('off');
    }
  });
})();
document.addEventListener('click', function (e) {
  var target = e.target;
  if (!target || !target.closest) return;
  var key = target.closest('g.key');
  if (key && key.parentNode) {
    key.parentNode.classList.toggle('off');
    return;
  }
  var family = target.closest('g.family');
  if (family) {
    var svg = family.closest('svg');
    var name = family.getAttribute('data-family');
    var members = Array.prototype.filter.call(svg.querySelectorAll('g.series'), function (g) {
      return g.getAttribute('data-family') === name;
    });
    var anyShown = members.some(function (g) { return !g.classList.contains('off'); });
    members.forEach(function (g) { g.classList.toggle('off', anyShown); });
  }
});"#;

fn html_table(out: &mut String, header: &[String], rows: &[Vec<String>]) {
    *out += "<table>\n<thead><tr>";
    for h in header {
        let _ = write!(out, "<th>{}</th>", inline(h));
    }
    *out += "</tr></thead>\n<tbody>\n";
    for row in rows {
        *out += "<tr>";
        for c in row {
            match untitled(c) {
                (text, Some(title)) => {
                    let _ = write!(out, "<td title=\"{}\">{}</td>", attr(title), inline(text));
                }
                (text, None) => {
                    let _ = write!(out, "<td>{}</td>", inline(text));
                }
            }
        }
        *out += "</tr>\n";
    }
    *out += "</tbody>\n</table>\n";
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:1rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.3rem;margin:1rem 0 .5rem}h3{font-size:1.1rem;margin:.8rem 0 .4rem}\
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}\
th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:right}\
th:first-child,td:first-child{text-align:left}\
th{background:#f3f3f3}\
code{background:#f3f3f3;padding:0 .2rem}\
figure{margin:1.5rem 0}figcaption{font-size:.9rem;color:#555}\
svg{max-width:100%;height:auto}\
.tall{max-height:17rem;overflow:auto;border:1px solid #ddd;margin:.5rem 0}.tall table{margin:0;font-size:.78rem}\
.tall th{position:sticky;top:0}.tall td,.tall th{text-align:left;padding:.15rem .4rem}td[title]{cursor:help;text-decoration:underline dotted #aaa}\
svg g.key,svg g.family{cursor:pointer}svg g.off>g.data{display:none}svg g.off>g.key{opacity:.3}\
svg circle.hit:hover{stroke:#333;stroke-width:1.5}";

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
