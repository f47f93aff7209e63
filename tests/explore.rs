//! `softmoe explore`: a small grid runs on the current adapter and writes its table, JSON and chart;
//! bad usage is one line and exit 2.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_softmoe");

#[test]
fn a_small_grid_is_timed_and_charted() {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explore-small");
    let _ = std::fs::remove_dir_all(&out);
    let o = Command::new(BIN)
        .args(["explore", "--d", "16", "--tokens", "9", "--hidden", "32", "--batch", "2"])
        .args(["--experts", "2,4", "--slots-per-expert", "1,2", "--total-slots", "8", "--budget-ms", "20", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 2 × 2 fixed-parameter configurations and n = 1, 2, 4, 8 for 8 slots.
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("explore.json")).unwrap()).unwrap();
    let points = doc["points"].as_array().unwrap();
    assert_eq!(points.len(), 8);
    let cfg: Vec<(u64, u64)> = points.iter().map(|p| (p["n"].as_u64().unwrap(), p["p"].as_u64().unwrap())).collect();
    assert_eq!(cfg, [(2, 1), (2, 2), (4, 1), (4, 2), (1, 8), (2, 4), (4, 2), (8, 1)]);
    for p in points {
        assert!(p["ms"].as_f64().is_some_and(|ms| ms > 0.0), "{p}");
        assert_eq!(p["slots"].as_u64(), Some(p["n"].as_u64().unwrap() * p["p"].as_u64().unwrap()));
        assert_eq!(p["bindings"].as_u64(), Some(1), "{p}");
    }
    let md = std::fs::read_to_string(out.join("explore.md")).unwrap();
    assert_eq!(md, stdout);
    assert_eq!(md.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| budget")).count(), 8, "{md}");
    // Each budget's fastest line names its configuration of least time.
    for (budget, label, rows) in [
        ("experts", "2 experts (fixed parameters)", 0..2),
        ("experts", "4 experts (fixed parameters)", 2..4),
        ("slots", "8 slots (fixed total slots)", 4..8),
    ] {
        let best = points[rows].iter().min_by(|a, b| a["ms"].as_f64().unwrap().total_cmp(&b["ms"].as_f64().unwrap())).unwrap();
        assert_eq!(best["budget"], budget);
        let line = format!("- {label}: n = {}, p = {} (", best["n"], best["p"]);
        assert!(md.contains(&line), "{line} in {md}");
    }
    let img = image::open(out.join("explore.png")).unwrap().to_rgb8();
    let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    assert!(ink > 5000, "explore.png has {ink} non-white pixels");
}

#[test]
fn bad_usage_is_one_line_and_status_2() {
    for (args, needle) in [
        (&["--tokens", "9", "--hidden", "32"][..], "--d is required"),
        (&["--d", "16", "--tokens", "0", "--hidden", "32"], "--tokens must be a positive integer, got `0`"),
        (&["--d", "16", "--tokens", "9", "--hidden", "32", "--experts", "2,x"], "--experts takes positive integers"),
        (&["--d", "16", "--tokens", "9", "--hidden", "32", "--frobnicate"], "unexpected argument `--frobnicate`"),
    ] {
        let o = Command::new(BIN).arg("explore").args(args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle) && err.lines().count() == 1, "{args:?}: expected `{needle}`, got {err}");
    }
}
