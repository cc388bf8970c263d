//! The issue board as `transition-issues` sees it (SPEC §7): workflow labels
//! in board order, and the decision what one issue's labels become.
//!
//! Pure: labels in, a decision out. Works the same with plain labels
//! (`in review`) and scoped ones (`workflow::in review`): the configured
//! names are matched exactly (ignoring ASCII case, as GitLab does when it
//! looks labels up by name).

/// Workflow labels in board order, left to right.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    labels: Vec<String>,
}

/// What to do to one issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// One edit: add `add`, remove `remove` (the issue's spelling).
    Move { add: String, remove: Vec<String> },
    /// The issue already has the target and no other workflow label.
    Unchanged,
    /// `forward_only`, and the issue is further along than the target.
    Backwards,
    /// Closed issues are left alone.
    Closed,
}

impl Board {
    pub fn new(labels: Vec<String>) -> Self {
        Self { labels }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn contains(&self, label: &str) -> bool {
        self.position(label).is_some()
    }

    /// Where a label is on the board.
    pub fn position(&self, label: &str) -> Option<usize> {
        self.labels
            .iter()
            .position(|l| l.eq_ignore_ascii_case(label))
    }

    /// The furthest workflow label an issue carries (its column).
    pub fn column<'a>(&self, issue_labels: &'a [String]) -> Option<&'a str> {
        issue_labels
            .iter()
            .filter_map(|l| self.position(l).map(|p| (p, l.as_str())))
            .max_by_key(|(p, _)| *p)
            .map(|(_, l)| l)
    }

    /// Move an issue carrying `issue_labels` to `target`: remove every other
    /// workflow label, add the target, in one edit.
    pub fn decide(
        &self,
        issue_labels: &[String],
        closed: bool,
        target: &str,
        forward_only: bool,
    ) -> Decision {
        if closed {
            return Decision::Closed;
        }
        let has_target = issue_labels.iter().any(|l| l.eq_ignore_ascii_case(target));
        let others: Vec<String> = issue_labels
            .iter()
            .filter(|l| self.contains(l) && !l.eq_ignore_ascii_case(target))
            .cloned()
            .collect();
        if forward_only {
            if let (Some(target_at), Some(furthest)) = (
                self.position(target),
                others.iter().filter_map(|l| self.position(l)).max(),
            ) {
                if furthest > target_at {
                    return Decision::Backwards;
                }
            }
        }
        if has_target && others.is_empty() {
            return Decision::Unchanged;
        }
        Decision::Move {
            add: target.to_owned(),
            remove: others,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(labels: &[&str]) -> Board {
        Board::new(labels.iter().map(|l| l.to_string()).collect())
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    const PLAIN: &[&str] = &["to do", "in development", "in review", "test", "testing"];

    #[test]
    fn moves_remove_other_workflow_labels_only() {
        let b = board(PLAIN);
        assert_eq!(
            b.decide(
                &labels(&["bug", "in development"]),
                false,
                "in review",
                true
            ),
            Decision::Move {
                add: "in review".into(),
                remove: vec!["in development".into()]
            }
        );
        assert_eq!(
            b.decide(&labels(&["bug"]), false, "in review", true),
            Decision::Move {
                add: "in review".into(),
                remove: vec![]
            }
        );
    }

    #[test]
    fn already_there_is_unchanged() {
        let b = board(PLAIN);
        assert_eq!(
            b.decide(&labels(&["bug", "In Review"]), false, "in review", true),
            Decision::Unchanged
        );
        // Target plus a stray earlier column: tidy up.
        assert_eq!(
            b.decide(&labels(&["to do", "in review"]), false, "in review", true),
            Decision::Move {
                add: "in review".into(),
                remove: vec!["to do".into()]
            }
        );
    }

    #[test]
    fn forward_only() {
        let b = board(PLAIN);
        let at_test = labels(&["test"]);
        assert_eq!(
            b.decide(&at_test, false, "in review", true),
            Decision::Backwards
        );
        assert_eq!(
            b.decide(&at_test, false, "in review", false),
            Decision::Move {
                add: "in review".into(),
                remove: vec!["test".into()]
            }
        );
        assert_eq!(
            b.decide(&labels(&["in review"]), false, "test", true),
            Decision::Move {
                add: "test".into(),
                remove: vec!["in review".into()]
            }
        );
    }

    #[test]
    fn closed_issues_are_left_alone() {
        assert_eq!(
            board(PLAIN).decide(&labels(&["to do"]), true, "test", true),
            Decision::Closed
        );
    }

    #[test]
    fn scoped_labels() {
        let b = board(&["workflow::to do", "workflow::in review", "workflow::test"]);
        assert_eq!(
            b.decide(
                &labels(&["workflow::to do", "team::db"]),
                false,
                "workflow::in review",
                true
            ),
            Decision::Move {
                add: "workflow::in review".into(),
                remove: vec!["workflow::to do".into()]
            }
        );
        assert_eq!(
            b.decide(
                &labels(&["workflow::test"]),
                false,
                "workflow::in review",
                true
            ),
            Decision::Backwards
        );
        assert_eq!(
            b.column(&labels(&["x", "workflow::test", "workflow::to do"])),
            Some("workflow::test")
        );
    }

    #[test]
    fn a_target_off_the_board_is_added_and_the_column_cleared() {
        let b = board(PLAIN);
        assert_eq!(
            b.decide(&labels(&["test"]), false, "blocked", true),
            Decision::Move {
                add: "blocked".into(),
                remove: vec!["test".into()]
            }
        );
        assert_eq!(
            Board::default().decide(&labels(&["x"]), false, "blocked", true),
            Decision::Move {
                add: "blocked".into(),
                remove: vec![]
            }
        );
    }
}
