//! The HTML page of `c10k check --report` in headless Chromium (`tests/interop/report.js`): a
//! grid of 5 cases against 3 implementations, opened from its file, shows 15 cells, the legend
//! and a count per column, and a click on a cell opens a panel with that cell's transcript,
//! text that would be markup shown as text.

#[path = "common/needs.rs"]
mod needs;

use std::path::{Path, PathBuf};
use std::process::Command;

use c10k_tools::check::Verdict;
use c10k_tools::check::html::{Cell, Grid, Row, render};

const ROWS: usize = 5;
const COLUMNS: usize = 3;

fn grid() -> Grid {
    let verdicts = [Verdict::Pass, Verdict::NonStrict, Verdict::Fail, Verdict::Skipped];
    Grid {
        title: "Three echo servers".to_owned(),
        subtitle: "a test grid".to_owned(),
        columns: ["c10k", "peer <one>", "peer & two"].map(str::to_owned).to_vec(),
        rows: (0..ROWS)
            .map(|r| Row {
                id: format!("case.{}.{}", r / 3 + 1, r % 3 + 1),
                group: if r < 3 { "Framing" } else { "Closing" }.to_owned(),
                description: format!("case {r}"),
                cells: (0..COLUMNS)
                    .map(|c| Cell {
                        // Row 0 agrees in every column; the others differ.
                        verdict: if r == 0 {
                            Verdict::Pass
                        } else {
                            verdicts[(r + c) % verdicts.len()]
                        },
                        reason: format!("row {r} column {c}"),
                        transcript: vec![
                            "+0.000 ms  TCP connected".to_owned(),
                            format!("+0.100 ms  < text 9 B \"<b>r{r}c{c}</b>\""),
                        ],
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Opens `file` with `tests/interop/report.js`: it must show `rows` x `columns` cells, and a
/// click on the cell at `at` (row, column) a transcript with `text`. What it printed; a
/// screenshot at `shots-1.png` when it failed.
fn open_in_chromium(
    file: &Path,
    rows: usize,
    columns: usize,
    at: (usize, usize),
    text: &str,
    shots: &Path,
) -> String {
    let out = Command::new("node")
        .arg(needs::root().join("tests/interop/report.js"))
        .arg(file)
        .args([rows, columns, at.0, at.1].map(|n| n.to_string()))
        .arg(text)
        .arg(shots)
        .output()
        .expect("cannot run node");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{printed}");
    assert!(
        out.status.success() && printed.contains("all passed"),
        "{} failed (a screenshot at {}-1.png):\n{printed}",
        file.display(),
        shots.display()
    );
    printed
}

#[test]
fn the_report_page_shows_every_cell_and_a_click_shows_its_transcript() {
    if !needs::browser() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join("report_page.html");
    std::fs::write(&file, render(&grid())).unwrap();
    let shots = dir.parent().unwrap().join("test-artifacts").join("report-page");
    let _ = std::fs::create_dir_all(shots.parent().unwrap());
    // Row 3, column 1: its own transcript line, markup shown as text.
    let text = open_in_chromium(&file, ROWS, COLUMNS, (3, 1), "< text 9 B \"<b>r3c1</b>\"", &shots);
    assert!(text.contains("ok   15 cells"), "{text}");
}

/// The case ids of a committed list (`check_cases.txt`, `check_client_cases.txt`).
fn listed(file: &str) -> usize {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join(file)).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

/// The published pages (`docs/reports/`): the servers' (c10k serve and four peers) and the
/// clients' (six clients) show a cell per case and implementation, and a click shows a
/// transcript. A change of the suites' cases makes this fail until the pages are made again
/// (`benches/conformance_report.sh`, `benches/clients_report.sh`).
#[test]
fn the_published_reports_show_a_cell_per_case_and_implementation() {
    if !needs::browser() {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for (page, rows, columns) in [
        ("servers.html", listed("check_cases.txt"), 5),
        ("clients.html", listed("check_client_cases.txt"), 6),
    ] {
        let file = needs::root().join("docs/reports").join(page);
        let shots = dir.parent().unwrap().join("test-artifacts").join(page);
        let text = open_in_chromium(&file, rows, columns, (0, 0), " ms  ", &shots);
        assert!(
            text.contains(&format!("ok   {} cells", rows * columns)),
            "{page}: {text}"
        );
    }
}
