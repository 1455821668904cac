//! What a call cost and where the number came from: the gateway's own figure when it
//! sends one (`x-litellm-response-cost`), else the configured prices, cached prompt
//! tokens at their own price.

use crate::domain::{Cost, CostSource, Usage};

/// USD per 1M tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    pub input: f64,
    /// Prompt tokens the provider served from its cache (defaults to `input`).
    pub cached_input: f64,
    pub output: f64,
}

impl Prices {
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let uncached = usage.prompt_tokens - cached;
        (uncached as f64 * self.input
            + cached as f64 * self.cached_input
            + usage.completion_tokens as f64 * self.output)
            / 1e6
    }
}

/// Adds up one call's answers: the gateway's figure only when every answer carried one,
/// otherwise the prices over all of them, so a call is never half one and half the other.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub usage: Usage,
    gateway_usd: f64,
    answers: u32,
    gateway_answers: u32,
}

impl Tally {
    pub fn add(&mut self, usage: Usage, gateway_usd: Option<f64>) {
        self.usage += usage;
        self.answers += 1;
        if let Some(usd) = gateway_usd {
            self.gateway_usd += usd;
            self.gateway_answers += 1;
        }
    }

    pub fn cost(&self, prices: Option<&Prices>) -> Option<Cost> {
        if self.answers > 0 && self.gateway_answers == self.answers {
            return Some(Cost {
                usd: self.gateway_usd,
                source: CostSource::Gateway,
            });
        }
        prices.map(|p| Cost {
            usd: p.cost(&self.usage),
            source: CostSource::Prices,
        })
    }
}

/// The `x-litellm-response-cost` header's value. A zero while prices are configured is
/// taken for "the gateway does not know this model's price", which LiteLLM reports as 0.
pub(super) fn gateway_cost(header: Option<&str>, prices_configured: bool) -> Option<f64> {
    let usd: f64 = header?.trim().parse().ok()?;
    if !usd.is_finite() || usd < 0.0 || (usd == 0.0 && prices_configured) {
        return None;
    }
    Some(usd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, cached: u64, completion: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: cached,
        }
    }

    #[test]
    fn cached_prompt_tokens_have_their_own_price() {
        let p = Prices {
            input: 2.0,
            cached_input: 0.5,
            output: 8.0,
        };
        let c = p.cost(&usage(1_000_000, 800_000, 500_000));
        assert!(
            (c - (0.2 * 2.0 + 0.8 * 0.5 + 0.5 * 8.0)).abs() < 1e-9,
            "{c}"
        );
        let same = Prices {
            cached_input: 2.0,
            ..p
        };
        assert!((same.cost(&usage(1_000_000, 800_000, 0)) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_gateways_figure_wins_only_when_every_answer_has_one() {
        let p = Prices {
            input: 1.0,
            cached_input: 1.0,
            output: 1.0,
        };
        let mut t = Tally::default();
        assert_eq!(t.cost(None), None);
        t.add(usage(1000, 0, 0), Some(0.25));
        t.add(usage(1000, 0, 0), Some(0.5));
        assert_eq!(
            t.cost(Some(&p)),
            Some(Cost {
                usd: 0.75,
                source: CostSource::Gateway
            })
        );
        t.add(usage(1000, 0, 1000), None);
        let c = t.cost(Some(&p)).unwrap();
        assert_eq!(c.source, CostSource::Prices);
        assert!((c.usd - 0.004).abs() < 1e-12);
        assert_eq!(t.cost(None), None);
    }

    #[test]
    fn gateway_cost_header() {
        assert_eq!(gateway_cost(Some("0.00123"), true), Some(0.00123));
        assert_eq!(gateway_cost(Some("0.0"), false), Some(0.0));
        assert_eq!(gateway_cost(Some("0.0"), true), None);
        assert_eq!(gateway_cost(Some("None"), false), None);
        assert_eq!(gateway_cost(Some("-1"), false), None);
        assert_eq!(gateway_cost(None, false), None);
    }
}
