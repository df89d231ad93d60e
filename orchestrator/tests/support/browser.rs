//! `report.html` in a real browser: Debian's headless Chromium lays the page
//! out, a probe measures every `<svg>` and records the page's errors, and a
//! screenshot `report.png` is saved beside the report.
//!
//! Include with `#[path = "support/browser.rs"] mod browser;` and call
//! [`check_report_in_browser`] on a report directory.
//!
//! How: a copy of the page (a temporary file beside it, so it resolves what
//! the original would) gets a first `<script>` that records uncaught errors,
//! failed loads and `console.error` calls, and a last one that, once the page
//! has loaded, measures each `<svg>` with `getBoundingClientRect()` and writes
//! it all as JSON into a `<pre id="probe">`; `chromium --dump-dom` prints the
//! DOM after load, the probe is read back from it. Chromium's log on stderr
//! (`--enable-logging=stderr`) catches console messages the page could not.
//! The screenshot is of the original page.

#![allow(dead_code)] // each test binary uses its own part

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

const CHROMIUM: &str = "chromium";
/// What a run of Chromium may take before it is killed (it takes ~2 s).
const DEADLINE: Duration = Duration::from_secs(90);
const WINDOW: &str = "--window-size=1280,2400";

/// Records what goes wrong, before the page's own content runs.
const PROBE_FIRST: &str = r#"<script>
window.__probeErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && t.tagName) {
    window.__probeErrors.push("failed to load <" + t.tagName.toLowerCase() + "> " + (t.src || t.href || ""));
  } else {
    window.__probeErrors.push("uncaught: " + e.message + " at line " + e.lineno);
  }
}, true);
window.addEventListener("unhandledrejection", function (e) {
  window.__probeErrors.push("unhandled rejection: " + e.reason);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__probeErrors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    return original.apply(console, arguments);
  };
})();
</script>"#;

/// Measures every `<svg>` once the page has loaded. The JSON is written with
/// `<`, `>`, `&` and everything outside printable ASCII as `\uXXXX`, so the
/// DOM serializer leaves it as it is.
const PROBE_LAST: &str = r#"<script>
window.addEventListener("load", function () {
  var svgs = Array.prototype.map.call(document.querySelectorAll("svg"), function (s) {
    var r = s.getBoundingClientRect();
    return { width: r.width, height: r.height, label: s.getAttribute("aria-label") || "" };
  });
  var json = JSON.stringify({ svgs: svgs, errors: window.__probeErrors || ["the first probe did not run"] });
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = json.replace(/[^\x20-\x7e]|[<>&]/g, function (c) {
    return "\\u" + ("0000" + c.charCodeAt(0).toString(16)).slice(-4);
  });
  document.body.appendChild(pre);
});
</script>"#;

/// One `<svg>` as the browser laid it out (CSS pixels).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SvgBox {
    pub width: f64,
    pub height: f64,
    /// Its `aria-label` (the plot's title), to name it in a message.
    pub label: String,
}

#[derive(Debug, Deserialize)]
struct Probe {
    svgs: Vec<SvgBox>,
    errors: Vec<String>,
}

/// What the browser saw of a report that passed.
#[derive(Debug)]
pub struct Rendered {
    pub svgs: Vec<SvgBox>,
    /// `report.png`, beside the report.
    pub screenshot: PathBuf,
}

/// Checks `dir/report.html` in headless Chromium: at least one `<svg>`, each
/// laid out with a non-zero width and height, no uncaught error, no failed
/// load, no console message; saves `dir/report.png`. Panics with the reasons.
pub fn check_report_in_browser(dir: &Path) -> Rendered {
    match render_in_browser(dir) {
        Ok(r) => r,
        Err(why) => panic!("{} in a browser: {why}", dir.join("report.html").display()),
    }
}

/// [`check_report_in_browser`] returning the reasons instead of panicking.
pub fn render_in_browser(dir: &Path) -> Result<Rendered, String> {
    render_with(CHROMIUM, dir)
}

/// [`render_in_browser`] with the browser binary `chromium`.
pub fn render_with(chromium: &str, dir: &Path) -> Result<Rendered, String> {
    let page = dir.join("report.html");
    let html = std::fs::read_to_string(&page).map_err(|e| format!("cannot read it: {e}"))?;
    present(chromium)?;
    let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;

    // The probed copy sits beside the original and is removed when dropped.
    let copy = tempfile::Builder::new()
        .prefix(".browser-probe-")
        .suffix(".html")
        .tempfile_in(dir)
        .map_err(|e| format!("cannot write the probed copy: {e}"))?;
    std::fs::write(copy.path(), probed(&html)?).map_err(|e| e.to_string())?;
    let dump = run(
        chromium,
        scratch.path(),
        &[
            "--dump-dom",
            "--virtual-time-budget=5000",
            "--enable-logging=stderr",
            "--v=0",
        ],
        copy.path(),
    )?;
    let probe = read_probe(&dump.stdout)?;
    let mut problems = probe.errors;
    problems.extend(console_messages(&dump.stderr));
    if probe.svgs.is_empty() {
        problems.push("no <svg> in the page".into());
    }
    for (i, s) in probe.svgs.iter().enumerate() {
        if !(s.width > 0.0 && s.height > 0.0) {
            problems.push(format!(
                "svg #{i} ({:?}) has zero size: {} x {}",
                s.label, s.width, s.height
            ));
        }
    }

    let screenshot = dir.join("report.png");
    let _ = std::fs::remove_file(&screenshot);
    let shot = format!("--screenshot={}", screenshot.display());
    let args = [shot.as_str(), WINDOW, "--hide-scrollbars"];
    if let Err(e) = run(chromium, scratch.path(), &args, &page).and_then(|_| check_png(&screenshot))
    {
        problems.push(e);
    }

    if problems.is_empty() {
        Ok(Rendered {
            svgs: probe.svgs,
            screenshot,
        })
    } else {
        Err(problems.join("; "))
    }
}

fn present(chromium: &str) -> Result<(), String> {
    const INSTALL: &str = "install Debian's chromium package (apt-get install chromium)";
    match Command::new(chromium).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{chromium} --version` failed ({}): {INSTALL}",
            out.status
        )),
        Err(e) => Err(format!("no `{chromium}` ({e}): {INSTALL}")),
    }
}

/// The page with the probes: the first script right after `<head>` (before
/// anything of the page), the last right before `</body>`.
fn probed(html: &str) -> Result<String, String> {
    let head = html.find("<head>").ok_or("no <head> in the page")? + "<head>".len();
    let body_end = html.rfind("</body>").ok_or("no </body> in the page")?;
    if body_end < head {
        return Err("</body> before <head>".into());
    }
    Ok(format!(
        "{}{PROBE_FIRST}{}{PROBE_LAST}{}",
        &html[..head],
        &html[head..body_end],
        &html[body_end..]
    ))
}

struct Output {
    stdout: String,
    stderr: String,
}

/// Runs headless `chromium` on `page` with `args`, its profile and output in
/// `scratch`; kills it after [`DEADLINE`].
fn run(chromium: &str, scratch: &Path, args: &[&str], page: &Path) -> Result<Output, String> {
    let stdout_path = scratch.join("stdout");
    let stderr_path = scratch.join("stderr");
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| e.to_string());
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.join("profile").display()
        ))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(file(&stdout_path)?)
        .stderr(file(&stderr_path)?)
        .spawn()
        .map_err(|e| format!("cannot start {chromium}: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{chromium} {args:?} still running after {DEADLINE:?}"
                ));
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let out = Output {
        stdout: read(&stdout_path),
        stderr: read(&stderr_path),
    };
    if !status.success() {
        return Err(format!(
            "{chromium} {args:?} exited with {status}: {}",
            out.stderr.trim()
        ));
    }
    Ok(out)
}

fn read_probe(dom: &str) -> Result<Probe, String> {
    const OPEN: &str = "<pre id=\"probe\">";
    let start = dom.find(OPEN).ok_or_else(|| {
        format!(
            "no probe in the page after load (it did not finish loading, or a script broke the probe); DOM: {}",
            dom.chars().take(500).collect::<String>()
        )
    })? + OPEN.len();
    let end = dom[start..]
        .find("</pre>")
        .ok_or("the probe does not close")?
        + start;
    serde_json::from_str(&dom[start..end])
        .map_err(|e| format!("the probe is not JSON ({e}): {}", &dom[start..end]))
}

/// Console messages in Chromium's log (`...:INFO:CONSOLE:12] "text", source: ...`).
/// The log does not tell `console.log` from `console.error`; the report has
/// no script of its own, so any console message is the browser complaining.
fn console_messages(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(|l| {
            let text = l.split_once("] ").map_or(l, |(_, t)| t);
            format!("console: {text}")
        })
        .collect()
}

fn check_png(path: &Path) -> Result<(), String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    let bytes =
        std::fs::read(path).map_err(|e| format!("no screenshot {}: {e}", path.display()))?;
    if bytes.len() <= SIGNATURE.len() + 25 || !bytes.starts_with(SIGNATURE) {
        return Err(format!(
            "{} is not a PNG ({} bytes)",
            path.display(),
            bytes.len()
        ));
    }
    Ok(())
}
