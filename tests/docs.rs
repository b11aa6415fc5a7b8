//! The documentation stays true: every relative link in the README, CONTRIBUTING and `docs/`
//! resolves (files and anchors), the README stays a first screen, its table is the headline of
//! the run it links with the intervals left out, and every model and workload has its row.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use echo_server::models::Model;
use echo_server::python;
use echobench::schema::{Profile, Workload};

/// The README's length, in lines: what it is, how to run it and what it found fit in it.
const README_MAX_LINES: usize = 250;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, CONTRIBUTING.md and every Markdown file in `docs/`.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no Markdown file");
    files.extend(docs);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of a Markdown text outside fenced code blocks, with their line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// A line with its inline code spans removed (a link is never inside one).
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The targets of the inline links and images of a line: `[text](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].trim().to_string());
            rest = &rest[end..];
        }
    }
    targets
}

/// GitHub's anchor of a heading: lower case, punctuation dropped (but `-` and `_`), spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown text's headings make; a repeated heading gets `-1`, `-2`, ...
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (_, line) in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let mut anchor = base.clone();
        let mut n = 0;
        while found.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        found.insert(anchor);
    }
    found
}

/// What is wrong with a relative link from `file`, if anything.
fn broken(file: &Path, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let resolved = if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent().unwrap().join(path)
    };
    if !resolved.exists() {
        return Some(format!("{} does not exist", resolved.display()));
    }
    if anchor.is_empty() {
        return None;
    }
    if resolved.extension().is_none_or(|e| e != "md") {
        return Some(format!(
            "an anchor into {}, which is not Markdown",
            resolved.display()
        ));
    }
    let known = anchors(&read(&resolved));
    (!known.contains(anchor)).then(|| format!("{} has no heading #{anchor}", resolved.display()))
}

#[test]
fn every_relative_link_in_the_docs_resolves_to_a_file_and_a_heading() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in documents() {
        let text = read(&file);
        for (number, line) in prose(&text) {
            for target in link_targets(line) {
                checked += 1;
                if let Some(why) = broken(&file, &target) {
                    let name = file.strip_prefix(root()).unwrap().display();
                    problems.push(format!("{name}:{number}: ({target}): {why}"));
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser reading the docs?"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_link_checker_catches_a_missing_file_and_a_missing_heading() {
    let readme = root().join("README.md");
    assert!(broken(&readme, "docs/compare.md#how-sure-each-figure-is").is_none());
    assert!(broken(&readme, "#the-two-commands").is_none());
    assert!(broken(&readme, "https://example.com/nowhere").is_none());
    assert!(broken(&readme, "docs/no-such-file.md").is_some());
    assert!(broken(&readme, "docs/compare.md#no-such-heading").is_some());
    assert!(broken(&readme, "#no-such-heading").is_some());
    assert_eq!(
        slug("Load from several hosts: `--agents`"),
        "load-from-several-hosts---agents"
    );
    assert_eq!(
        slug("The tutorials' Python servers"),
        "the-tutorials-python-servers"
    );
    assert_eq!(
        link_targets("see [a](x.md#y) and ![b](c.svg), not `[c](d)`"),
        ["x.md#y", "c.svg"]
    );
}

#[test]
fn the_readme_is_one_screenful_of_what_how_and_what_it_found() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; keep it under {README_MAX_LINES} and move details to docs/"
    );
    for must in [
        "cargo run --release -- compare",
        "cargo test --workspace --all-targets",
    ] {
        assert!(readme.contains(must), "README.md lacks `{must}`");
    }
}

/// The rows of the first Markdown table whose header starts with `header_start`: the header's
/// cells, then each row's cells.
fn table(text: &str, header_start: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let mut lines = text.lines().skip_while(|l| !l.starts_with(header_start));
    let header = cells(
        lines
            .next()
            .unwrap_or_else(|| panic!("no table {header_start}")),
    );
    let rows = lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .collect();
    (header, rows)
}

/// A report cell with its interval and its sample size left out: `13,623 ± 340 (16) [3×10]`
/// is `13,623 (16)`, `485 µs (−120 µs, +7000 µs) [3×10] (rate not met)` is
/// `485 µs (rate not met)`.
fn median_only(cell: &str) -> String {
    const UNITS: [&str; 7] = ["µs", "ms", "s", "B", "KiB", "MiB", "GiB"];
    let words: Vec<&str> = cell.split(' ').collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = words[i];
        if word.starts_with('[') || word.starts_with("(−") {
            let close = if word.starts_with('[') { ']' } else { ')' };
            while i < words.len() && !words[i].ends_with(close) {
                i += 1;
            }
            i += 1;
        } else if word.starts_with('±') && word.len() > '±'.len_utf8() {
            // The headline's compact certainty: `±1 %`.
            i += 1;
            if words.get(i) == Some(&"%") {
                i += 1;
            }
        } else if word == "±" {
            i += 2;
            if words.get(i).is_some_and(|w| UNITS.contains(w)) {
                i += 1;
            }
        } else {
            kept.push(word);
            i += 1;
        }
    }
    kept.join(" ")
}

#[test]
fn the_readme_table_is_the_linked_runs_headline_without_intervals() {
    assert_eq!(median_only("13,623 ± 340 (16) [3×10]"), "13,623 (16)");
    assert_eq!(
        median_only("485 µs (−120 µs, +7000 µs) [3×10] (rate not met)"),
        "485 µs (rate not met)"
    );
    assert_eq!(median_only("29.6 KiB ± 56 B [3 runs]"), "29.6 KiB");
    assert_eq!(median_only("≥ 189.6k ±1 %"), "≥ 189.6k");
    assert_eq!(
        median_only("470 ±0.4 % (rate not met)"),
        "470 (rate not met)"
    );

    let readme = read(&root().join("README.md"));
    let found = readme
        .split("## What it found")
        .nth(1)
        .expect("a section What it found");
    let run = found
        .lines()
        .flat_map(link_targets)
        .find(|t| t.starts_with("results/") && t.ends_with("/report.md"))
        .expect("What it found links the run's report.md");
    let report = read(&root().join(&run));
    let (ours, rows) = table(found, "| model |");
    let (theirs, headline) = table(&report, "| model |");
    let models = |rows: &[Vec<String>]| rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    assert_eq!(
        models(&rows),
        models(&headline),
        "the models of {run}'s headline"
    );
    for (row, full) in rows.iter().zip(&headline) {
        for (column, cell) in ours.iter().zip(row) {
            let at = theirs
                .iter()
                .position(|h| h == column)
                .unwrap_or_else(|| panic!("{run}'s headline has no column '{column}'"));
            assert_eq!(
                cell,
                &median_only(&full[at]),
                "{} / {column}: README against {run}",
                row[0]
            );
        }
    }
}

#[test]
fn every_model_has_its_row_in_docs_servers() {
    let servers = read(&root().join("docs/servers.md"));
    let names = Model::ALL
        .iter()
        .map(|m| m.name())
        .chain(python::MODELS.iter().map(|m| m.name));
    for name in names {
        assert!(
            servers.contains(&format!("\n| `{name}` |")),
            "docs/servers.md has no table row for the model {name}"
        );
    }
}

#[test]
fn every_workload_has_its_row_in_docs_compare() {
    let compare = read(&root().join("docs/compare.md"));
    let (_, rows) = table(&compare, "| workload |");
    let named: Vec<String> = rows
        .iter()
        .flat_map(|r| r[0].split(", ").map(str::to_string).collect::<Vec<_>>())
        .collect();
    for workload in Workload::all_of_profile(Profile::Full) {
        let name = workload.name();
        assert!(
            named
                .iter()
                .any(|n| n == name || n.starts_with(&format!("{name}-"))),
            "docs/compare.md's workload table has no row for {name}"
        );
    }
}
