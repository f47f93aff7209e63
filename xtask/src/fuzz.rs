//! `cargo xtask fuzz [SECONDS] [TARGET…]`: libFuzzer through cargo-fuzz, on the stable toolchain.

use std::process::Command;

use crate::setup::{root, succeeds};

pub const TARGETS: [&str; 2] = ["weights_loader", "layer_vs_reference"];

/// Installs cargo-fuzz when missing.
pub fn install() -> Result<(), String> {
    if !succeeds(Command::new(env!("CARGO")).args(["fuzz", "--version"])) {
        crate::cargo(&["install", "--locked", "cargo-fuzz"])?;
    }
    Ok(())
}

pub fn run(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args.first() {
        Some(s) if s.parse::<u64>().is_ok() => s.parse().unwrap_or(60),
        _ => 60,
    };
    let named: Vec<&str> = args.iter().filter(|a| a.parse::<u64>().is_err()).map(String::as_str).collect();
    let targets: Vec<&str> = if named.is_empty() { TARGETS.to_vec() } else { named };
    install()?;
    let fuzz_dir = root().join("fuzz");
    for target in targets {
        std::fs::create_dir_all(fuzz_dir.join("corpus").join(target)).map_err(|e| e.to_string())?;
        // cargo-fuzz passes nightly flags (sanitizers); RUSTC_BOOTSTRAP lets the stable compiler take them.
        // Leak detection is off: the software GPU driver keeps allocations alive for the process.
        let max_time = format!("-max_total_time={seconds}");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["fuzz", "run", "-O", target, "--", &max_time, "-detect_leaks=0", "-print_final_stats=1"])
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("ASAN_OPTIONS", "detect_leaks=0");
        if target == "weights_loader" {
            cmd.arg("-dict=safetensors.dict");
        }
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let out = cmd.output().map_err(|e| format!("cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "?".into());
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            return Err(format!(
                "fuzz target {target} failed after {runs} runs:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        println!("fuzz {target}: {runs} executions in {seconds} s, no failure");
    }
    Ok(())
}
