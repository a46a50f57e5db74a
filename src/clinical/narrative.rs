//! The clinician-facing summary: safety signals first, then status, counted trials,
//! stages, top findings and suggestions, readable in ten seconds. Plain text and FHIR Narrative XHTML.

use super::assessment::{Assessment, Narrative};
use super::finding::{codes, Severity};
use super::numbers::{count, fmt, tenths, weeks};

struct Lines {
    /// Safety signals: before everything, the headline included.
    safety: Vec<String>,
    headline: String,
    sections: Vec<(&'static str, Vec<String>)>,
}

fn lines(a: &Assessment) -> Lines {
    let headline = format!(
        "TRD status: {} ({}). {}",
        a.trd_status.code(),
        a.status.rule,
        a.status.explanation
    );
    let mut episode = Vec::new();
    if let Some(start) = a.episode.start {
        let months = count(a.episode.months.unwrap_or(0), "month");
        let mut line = format!(
            "since {start} ({months}{})",
            if a.episode.chronic { ", chronic" } else { "" }
        );
        if let Some(s) = &a.episode.severity {
            line.push_str(&format!(
                "; baseline {} {} ({})",
                s.instrument,
                fmt(s.score),
                s.band.as_deref().unwrap_or("no band")
            ));
        }
        if a.episode.psychotic_features {
            line.push_str("; psychotic features");
        }
        episode.push(line);
    }
    let trials = a
        .trials
        .iter()
        .zip(&a.status.trials)
        .map(|(t, c)| {
            let dose = t
                .daily_dose_mg
                .map(|d| format!("{} mg/day", fmt(d)))
                .unwrap_or_else(|| "dose unknown".into());
            let mark = if c.counted {
                "counted as failed"
            } else {
                "not counted"
            };
            let mut notes = String::new();
            if let Some(earlier) = &t.retrial_of {
                notes.push_str(&format!(" (re-trial of {earlier})"));
            }
            if t.orders_only {
                notes.push_str(" (orders only: adherence unknown)");
            }
            format!(
                "{} {} {dose}, {} to {}{notes}: {mark} — {}",
                t.id, t.ingredient, t.start, t.end, c.why
            )
        })
        .collect();
    let non_trials = a
        .non_trials
        .iter()
        .map(|n| format!("{} to {}: {}", n.start, n.end, n.text))
        .collect();
    let mut staging = vec![format!("Thase-Rush {}", a.thase_rush_stage.roman)];
    if let Some(msm) = &a.msm {
        let parts: Vec<String> = msm
            .parts
            .iter()
            .map(|p| format!("{} {}", p.item, p.points))
            .collect();
        staging.push(format!(
            "MSM {} {} ({})",
            msm.score,
            msm.band,
            parts.join(" + ")
        ));
    }
    staging.push(format!("MGH-S {}", fmt(a.mgh_s.score)));
    // Safety signals all come first, in their own section, never cut off.
    let safety = a
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Safety)
        .map(|f| f.text.clone())
        .collect();
    let function = function_line(a).into_iter().collect();
    // The latest three courses, newest first.
    let psychotherapy = a
        .psychotherapy
        .iter()
        .rev()
        .take(3)
        .map(|c| {
            let adequacy = if c.adequate { "adequate" } else { "short" };
            let mut line = format!(
                "{} {} to {}: {} sessions over {} weeks ({adequacy})",
                c.name,
                c.start,
                c.end,
                c.sessions,
                weeks(c.weeks)
            );
            if !c.during_trials.is_empty() {
                line.push_str(&format!(", during {}", c.during_trials.join(", ")));
            }
            if let Some(s) = &c.symptoms {
                line.push_str(&format!(
                    "; {} {} -> {} at best ({}% reduction)",
                    s.instrument,
                    fmt(s.baseline.value),
                    fmt(s.best.value),
                    tenths(s.percent_change)
                ));
            }
            line
        })
        .collect();
    let mut clinical: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.is_clinical() && f.severity != Severity::Safety)
        .filter(|f| !FUNCTION_CODES.contains(&f.code.as_str()))
        .collect();
    clinical.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let findings = clinical
        .iter()
        .take(4)
        .map(|f| {
            format!(
                "{}{}",
                if f.severity == Severity::High {
                    "! "
                } else {
                    ""
                },
                f.text
            )
        })
        .collect();
    let suggestions = a
        .suggestions
        .iter()
        .take(4)
        .map(|s| s.text.clone())
        .collect();
    Lines {
        headline,
        safety,
        sections: vec![
            ("Episode", episode),
            ("Trials", trials),
            ("Not antidepressant trials", non_trials),
            ("Function", function),
            ("Psychotherapy", psychotherapy),
            ("Staging", vec![staging.join("; ")]),
            ("Findings", findings),
            ("Suggestions", suggestions),
        ],
    }
}

/// Said elsewhere, not under Findings: the function findings in the Function line,
/// the missing psychotherapy in the psychotherapy suggestion.
const FUNCTION_CODES: &[&str] = &[
    codes::FUNCTION_STILL_IMPAIRED,
    codes::NO_FUNCTIONAL_MEASURE,
    codes::NO_PSYCHOTHERAPY,
];

/// One line on function: a finding about it, else the latest trial's functional change
/// beside its symptom response.
fn function_line(a: &Assessment) -> Option<String> {
    let finding = |code: &str| a.findings.iter().find(|f| f.code == code);
    if let Some(f) = finding(codes::FUNCTION_STILL_IMPAIRED) {
        return Some(f.text.clone());
    }
    let latest = a
        .trials
        .iter()
        .filter(|t| t.function.is_some())
        .max_by_key(|t| t.start);
    if let Some((t, change)) = latest.and_then(|t| Some((t, t.function.as_ref()?))) {
        let direction = if change.change == 0.0 {
            "no change"
        } else if change.improved {
            "improved"
        } else {
            "worse"
        };
        let symptoms = serde_json::to_value(t.response.class)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        return Some(format!(
            "{} {}: {}, {direction}; symptoms: {symptoms}",
            t.id,
            t.ingredient,
            change.describe()
        ));
    }
    finding(codes::NO_FUNCTIONAL_MEASURE).map(|f| f.text.clone())
}

pub fn render(a: &Assessment) -> Narrative {
    let Lines {
        safety,
        headline,
        sections,
    } = lines(a);
    let mut text = String::new();
    let mut xhtml = String::from("<div xmlns=\"http://www.w3.org/1999/xhtml\">");
    if !safety.is_empty() {
        text.push_str("SAFETY:");
        xhtml.push_str("<p><b>SAFETY:</b></p><ul>");
        for item in &safety {
            text.push_str(&format!("\n- {item}"));
            xhtml.push_str(&format!("<li><b>{}</b></li>", escape(item)));
        }
        text.push('\n');
        xhtml.push_str("</ul>");
    }
    text.push_str(&headline);
    xhtml.push_str(&format!("<p><b>{}</b></p>", escape(&headline)));
    for (title, items) in sections.iter().filter(|(_, items)| !items.is_empty()) {
        text.push_str(&format!("\n{title}:"));
        xhtml.push_str(&format!("<p>{title}:</p><ul>"));
        for item in items {
            text.push_str(&format!("\n- {item}"));
            xhtml.push_str(&format!("<li>{}</li>", escape(item)));
        }
        xhtml.push_str("</ul>");
    }
    xhtml.push_str("</div>");
    Narrative { text, xhtml }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
