//! Helpers for echobench's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

/// Every file directly in `dir` (no subdirectories), with its bytes, sorted by name; the
/// environment file is left out when `with_environment` is false.
pub fn files(dir: &Path, with_environment: bool) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter(|e| with_environment || e.file_name() != "environment.json")
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The cells of a `summary.json`, each as `MODEL LABEL`, in the order the summary lists them.
pub fn cells_ran(summary: &serde_json::Value) -> Vec<String> {
    summary["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["model"].as_str().unwrap(),
                c["label"].as_str().unwrap()
            )
        })
        .collect()
}
