//! Staging of treatment resistance, each score with its parts so a clinician can
//! check the arithmetic: Thase-Rush (0-V), Maudsley Staging Method (3-15) and MGH-S.

use serde::Serialize;

use super::episode::Episode;
use super::knowledge::StagingTables;
use super::record::SourceRef;
use super::status::{JudgedTrial, StatusVerdict, TrdStatus};
use super::trial::TrialRelation;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThaseRush {
    pub stage: u8,
    pub roman: &'static str,
    /// Why this stage, step by step.
    pub parts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MsmPart {
    pub item: &'static str,
    /// What the data showed ("14 months", "moderate (PHQ-9 14)").
    pub value: String,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Msm {
    pub score: u32,
    pub band: String,
    pub parts: Vec<MsmPart>,
    /// Items the data could not score (counted as 0): the score is then a minimum.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MghSPart {
    pub item: String,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MghS {
    pub score: f64,
    pub parts: Vec<MghSPart>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Staging {
    pub thase_rush: ThaseRush,
    pub msm: Option<Msm>,
    pub mgh_s: MghS,
}

/// ECT in the current episode, and whether it failed (no response or remission
/// since).
pub struct EctHistory {
    pub used: bool,
    pub failed: bool,
    pub evidence: Vec<SourceRef>,
}

const ROMAN: [&str; 6] = ["0", "I", "II", "III", "IV", "V"];

pub fn stage(
    judged: &[JudgedTrial<'_>],
    status: &StatusVerdict,
    episode: &Episode,
    ect: &EctHistory,
    tables: &StagingTables,
) -> Staging {
    let failed: Vec<&JudgedTrial<'_>> = judged
        .iter()
        .filter(|j| {
            status
                .trials
                .iter()
                .any(|c| c.counted && c.trial == j.trial.id)
        })
        .collect();
    Staging {
        thase_rush: thase_rush(&failed, ect, tables),
        msm: msm(&failed, judged, episode, ect, tables),
        mgh_s: mgh_s(&failed, ect, tables),
    }
}

fn thase_rush(failed: &[&JudgedTrial<'_>], ect: &EctHistory, tables: &StagingTables) -> ThaseRush {
    let table = &tables.thase_rush;
    let mut classes: Vec<&str> = failed.iter().map(|j| j.class).collect();
    classes.sort();
    classes.dedup();
    let mut parts = Vec::new();
    let mut stage = 0u8;
    if !failed.is_empty() {
        stage = 1;
        parts.push(format!(
            "I: failed adequate trial of {}",
            classes.first().copied().unwrap_or("?")
        ));
    }
    if classes.len() >= 2 {
        stage = 2;
        parts.push(format!(
            "II: failed trials of {} classes ({})",
            classes.len(),
            classes.join(", ")
        ));
    }
    let failed_class = |names: &[String]| {
        failed
            .iter()
            .find(|j| names.iter().any(|n| n == j.class))
            .map(|j| j.ingredient)
    };
    if stage == 2 {
        if let Some(tca) = failed_class(&table.tca_classes) {
            stage = 3;
            parts.push(format!("III: failed TCA ({tca})"));
        }
    }
    if stage == 3 {
        if let Some(maoi) = failed_class(&table.maoi_classes) {
            stage = 4;
            parts.push(format!("IV: failed MAOI ({maoi})"));
        }
    }
    if stage == 4 && ect.failed {
        stage = 5;
        parts.push("V: ECT without response".into());
    }
    if stage == 0 {
        parts.push("0: no failed adequate trial".into());
    }
    ThaseRush {
        stage,
        roman: ROMAN[usize::from(stage)],
        parts,
    }
}

fn msm(
    failed: &[&JudgedTrial<'_>],
    judged: &[JudgedTrial<'_>],
    episode: &Episode,
    ect: &EctHistory,
    tables: &StagingTables,
) -> Option<Msm> {
    let table = &tables.msm;
    // The method stages treatment resistance: without a failed trial there is none.
    if failed.is_empty() {
        return None;
    }
    let months = episode.months?;
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    parts.push(MsmPart {
        item: "duration",
        value: format!("{months} months"),
        points: table.duration_points(months),
    });

    let level = if episode.psychotic_features {
        Some((
            "severe-psychotic".to_string(),
            "psychotic features recorded".to_string(),
        ))
    } else {
        episode.severity.as_ref().and_then(|s| {
            let band = s.band.as_deref()?;
            let level = table.phq9_severity.get(band)?;
            Some((
                level.clone(),
                format!(
                    "{band} ({} {} on {})",
                    s.instrument,
                    super::numbers::fmt(s.score),
                    s.date
                ),
            ))
        })
    };
    match level {
        Some((level, from)) => {
            let points = table.severity.get(&level).copied().unwrap_or(0);
            parts.push(MsmPart {
                item: "severity",
                value: format!("{level}: {from}"),
                points,
            });
        }
        None => {
            missing.push("severity: no baseline PHQ-9 in the episode".to_string());
            parts.push(MsmPart {
                item: "severity",
                value: "unknown".into(),
                points: 0,
            });
        }
    }
    let count = failed.len() as u32;
    parts.push(MsmPart {
        item: "failed treatments",
        value: format!("{count}"),
        points: table.failure_points(count),
    });
    let augmented = judged
        .iter()
        .filter(|j| episode.trials.contains(&j.trial.id))
        .find(|j| {
            !j.trial.augmented_by.is_empty()
                || matches!(j.trial.relation, TrialRelation::CombinedWith { .. })
        });
    let (value, points) = match augmented {
        Some(j) => (
            format!("yes ({} {})", j.trial.id, j.ingredient),
            table.augmentation_used,
        ),
        None => ("no".into(), 0),
    };
    parts.push(MsmPart {
        item: "augmentation",
        value,
        points,
    });
    let (value, points) = if ect.used {
        ("yes".to_string(), table.ect_used)
    } else {
        ("no".to_string(), 0)
    };
    parts.push(MsmPart {
        item: "ECT",
        value,
        points,
    });
    let score = parts.iter().map(|p| p.points).sum();
    Some(Msm {
        score,
        band: table.band(score).to_string(),
        parts,
        missing,
    })
}

fn mgh_s(failed: &[&JudgedTrial<'_>], ect: &EctHistory, tables: &StagingTables) -> MghS {
    let table = &tables.mgh_s;
    let mut parts = Vec::new();
    for j in failed {
        parts.push(MghSPart {
            item: format!("failed adequate trial {} {}", j.trial.id, j.ingredient),
            points: table.per_failed_trial,
        });
        let optimised = j.trial.dose_steps.windows(2).any(
            |w| matches!((w[0].daily_dose.mg, w[1].daily_dose.mg), (Some(a), Some(b)) if b > a),
        );
        let augmented = !j.trial.augmented_by.is_empty()
            || matches!(j.trial.relation, TrialRelation::CombinedWith { .. });
        if optimised || augmented {
            let how = match (optimised, augmented) {
                (true, true) => "optimised and augmented",
                (true, false) => "optimised (dose increased)",
                _ => "augmented",
            };
            parts.push(MghSPart {
                item: format!("{} {how}", j.trial.id),
                points: table.per_optimised_or_augmented_trial,
            });
        }
    }
    if ect.failed {
        parts.push(MghSPart {
            item: "failed ECT".into(),
            points: table.failed_ect,
        });
    }
    MghS {
        score: parts.iter().fold(0.0, |total, p| total + p.points),
        parts,
    }
}

/// ECT procedures in the episode; failed when the status shows no response since.
pub fn ect_history(
    procedures: &[&super::record::ProcedureFact],
    episode: &Episode,
    status: TrdStatus,
) -> EctHistory {
    let in_episode: Vec<SourceRef> = procedures
        .iter()
        .filter(|p| {
            episode
                .start
                .is_some_and(|s| p.performed.is_some_and(|d| d >= s))
        })
        .map(|p| p.source.clone())
        .collect();
    let used = !in_episode.is_empty();
    EctHistory {
        used,
        failed: used && !matches!(status, TrdStatus::Responding | TrdStatus::Remission),
        evidence: in_episode,
    }
}

#[cfg(test)]
mod tests {
    use crate::clinical::knowledge::Knowledge;

    #[test]
    fn msm_tables_at_every_band_edge() {
        let k = Knowledge::embedded().expect("knowledge");
        let msm = &k.staging.msm;
        let duration = [(0, 1), (12, 1), (13, 2), (24, 2), (25, 3), (120, 3)];
        for (months, points) in duration {
            assert_eq!(msm.duration_points(months), points, "{months} months");
        }
        let failures = [
            (0, 0),
            (1, 1),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (6, 3),
            (7, 4),
            (10, 4),
            (11, 5),
            (30, 5),
        ];
        for (count, points) in failures {
            assert_eq!(msm.failure_points(count), points, "{count} failures");
        }
        let bands = [
            (3, "mild"),
            (6, "mild"),
            (7, "moderate"),
            (10, "moderate"),
            (11, "severe"),
            (15, "severe"),
        ];
        for (total, band) in bands {
            assert_eq!(msm.band(total), band, "total {total}");
        }
        let severity = [
            ("subsyndromal", 1),
            ("mild", 2),
            ("moderate", 3),
            ("severe", 4),
            ("severe-psychotic", 5),
        ];
        for (level, points) in severity {
            assert_eq!(msm.severity[level], points, "{level}");
        }
        assert_eq!(msm.phq9_severity["moderately-severe"], "severe");
        assert_eq!(msm.phq9_severity["none"], "subsyndromal");
        assert_eq!((msm.augmentation_used, msm.ect_used), (1, 1));
    }

    #[test]
    fn mgh_s_weights() {
        let k = Knowledge::embedded().expect("knowledge");
        let t = &k.staging.mgh_s;
        assert_eq!(
            (
                t.per_failed_trial,
                t.per_optimised_or_augmented_trial,
                t.failed_ect
            ),
            (1.0, 0.5, 3.0)
        );
    }
}
