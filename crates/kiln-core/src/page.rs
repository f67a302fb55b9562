//! Limit/offset pagination as CONTRACT §1.7 defines it: a missing or
//! non-positive limit means the default, a limit above the cap is clamped, a
//! negative offset means 0.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Page {
    pub fn new(limit: Option<i64>, offset: Option<i64>, default: i64, cap: i64) -> Self {
        let limit = match limit {
            Some(l) if l > 0 => l.min(cap),
            _ => default,
        };
        let offset = offset.unwrap_or(0).max(0);
        Page { limit, offset }
    }
}

#[cfg(test)]
mod tests {
    use super::Page;

    #[test]
    fn clamps_and_defaults_like_the_contract() {
        assert_eq!(
            Page::new(None, None, 100, 500),
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(
            Page::new(Some(0), Some(-3), 100, 500),
            Page {
                limit: 100,
                offset: 0
            }
        );
        assert_eq!(
            Page::new(Some(9000), Some(7), 100, 500),
            Page {
                limit: 500,
                offset: 7
            }
        );
        assert_eq!(Page::new(Some(20), None, 100, 500), Page { limit: 20, offset: 0 });
    }
}
