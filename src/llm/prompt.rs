//! A department's prompt template and the prompt rendered from it for one call.
//!
//! Templates are the old tool's Python `str.format` templates and must work unchanged:
//! `{transcription}`, `{criteria_list}` and `{custom_instructions}` are substituted,
//! `{{` and `}}` stand for literal braces, and whatever `str.format` would reject is
//! rejected here too, at start-up, naming the line and column.

use crate::domain::{Checklist, content_version, format_score};

/// What a placeholder stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Transcription,
    CriteriaList,
    CustomInstructions,
}

impl Placeholder {
    const ALL: [Placeholder; 3] = [
        Placeholder::Transcription,
        Placeholder::CriteriaList,
        Placeholder::CustomInstructions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Transcription => "transcription",
            Placeholder::CriteriaList => "criteria_list",
            Placeholder::CustomInstructions => "custom_instructions",
        }
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Text with `{{`/`}}` already unescaped.
    Literal(String),
    Field(Placeholder),
}

/// A parsed prompt template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// Why a template was rejected; `line` and `column` are 1-based, columns count characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "line {line}, column {column}: unknown placeholder {{{name}}} \
         (known: {{transcription}}, {{criteria_list}}, {{custom_instructions}}; \
         write {{{{ and }}}} for literal braces)"
    )]
    UnknownPlaceholder {
        name: String,
        line: usize,
        column: usize,
    },
    #[error("line {line}, column {column}: single '{{' (write '{{{{' for a literal brace)")]
    LoneOpenBrace { line: usize, column: usize },
    #[error("line {line}, column {column}: single '}}' (write '}}}}' for a literal brace)")]
    LoneCloseBrace { line: usize, column: usize },
    #[error(
        "line {line}, column {column}: '{{' inside a placeholder \
         (write '{{{{' for a literal brace)"
    )]
    BraceInPlaceholder { line: usize, column: usize },
    #[error(
        "the template has no {{transcription}} placeholder, so the model would never see the call"
    )]
    NoTranscription,
}

/// 1-based line and column of byte offset `at`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl Template {
    /// Parses a template the way Python's `str.format` reads it. Placeholders must be
    /// exactly one of the three names: format specs and conversions (`{x:>10}`,
    /// `{x!r}`) and positional fields (`{}`, `{0}`) are rejected, since no template
    /// has a use for them and the old tool would have failed on most of them.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if matches!(chars.peek(), Some((_, '{'))) => {
                    chars.next();
                    literal.push('{');
                }
                '{' => {
                    let start = at + 1;
                    let end = loop {
                        match chars.next() {
                            Some((i, '}')) => break i,
                            Some((i, '{')) => {
                                let (line, column) = position(text, i);
                                return Err(TemplateError::BraceInPlaceholder { line, column });
                            }
                            Some(_) => {}
                            None => {
                                let (line, column) = position(text, at);
                                return Err(TemplateError::LoneOpenBrace { line, column });
                            }
                        }
                    };
                    let name = &text[start..end];
                    let Some(p) = Placeholder::from_name(name) else {
                        let (line, column) = position(text, at);
                        return Err(TemplateError::UnknownPlaceholder {
                            name: name.to_string(),
                            line,
                            column,
                        });
                    };
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Field(p));
                }
                '}' if matches!(chars.peek(), Some((_, '}'))) => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    let (line, column) = position(text, at);
                    return Err(TemplateError::LoneCloseBrace { line, column });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        if !segments.contains(&Segment::Field(Placeholder::Transcription)) {
            return Err(TemplateError::NoTranscription);
        }
        Ok(Template {
            source: text.to_string(),
            segments,
        })
    }

    /// The template text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `p` at least once.
    pub fn uses(&self, p: Placeholder) -> bool {
        self.segments.contains(&Segment::Field(p))
    }
}

/// The `{criteria_list}` text: one block per criterion, sheet order.
pub fn criteria_list(checklist: &Checklist) -> String {
    let mut out = String::new();
    for c in &checklist.criteria {
        out.push_str("КАТЕГОРИЯ: ");
        out.push_str(&c.category);
        out.push_str("\nКРИТЕРИЙ: ");
        out.push_str(&c.indicator);
        out.push_str("\nКОММЕНТАРИЙ: ");
        out.push_str(&c.comment);
        out.push_str("\nМАКСИМАЛЬНЫЙ БАЛЛ: ");
        out.push_str(&format_score(c.max_score));
        out.push_str("\nУСЛОВИЯ ОЦЕНКИ: ");
        out.push_str(&c.conditions);
        out.push_str("\n\n");
    }
    out
}

/// One piece of the prompt as prepared for a run.
#[derive(Debug, Clone)]
enum Piece {
    Static(String),
    Transcription,
}

/// Where the transcript goes in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptLayout {
    /// Everything that is the same for every call of a run first, the transcript last, so
    /// providers' prompt caches can serve the shared prefix (PROMPT_LAYOUT=cached).
    #[default]
    Cached,
    /// The template exactly as the old tool rendered it (PROMPT_LAYOUT=inline).
    Inline,
}

/// Asks for a quote behind every score. It follows the criteria list (or ends a template
/// without one), so it is part of the text every call shares and a cached prefix keeps it;
/// it holds in prompt-only mode too, where no schema names the field.
pub const EVIDENCE_INSTRUCTION: &str = "ЦИТАТЫ-ДОКАЗАТЕЛЬСТВА\n\
Добавь в каждую оценку в evaluations поле \"evidence\": короткую дословную цитату из \
транскрипции звонка (не длиннее 300 символов), на которой основан балл. Копируй слова точно \
так, как они записаны в транскрипции, без пересказа, без пропусков и без меток operator:/client:. \
Если балл поставлен за то, чего в звонке не было, напиши \"evidence\": \"\".\n\n";

/// Stands where `{transcription}` was when the cached layout moves the transcript to the end.
const TRANSCRIPT_MOVED: &str = "(транскрипция звонка приведена в конце этого сообщения)";
/// Heads the transcript at the end of a prompt in the cached layout.
const TRANSCRIPT_HEADING: &str = "\n\nТРАНСКРИПЦИЯ ЗВОНКА:\n";

/// Renders one prompt per call. Everything but the transcript is rendered once per run.
///
/// `new` keeps the template's own order, so the prompt is byte for byte what the old tool
/// sent; [`PromptBuilder::layout`] can then move the transcript to the end.
#[derive(Debug, Clone)]
pub struct PromptBuilder {
    pieces: Vec<Piece>,
    static_len: usize,
    version: String,
}

impl PromptBuilder {
    pub fn new(template: Template, checklist: &Checklist) -> PromptBuilder {
        let criteria = criteria_list(checklist);
        let criteria_and_evidence = format!("{criteria}{EVIDENCE_INSTRUCTION}");
        let mut evidence_asked = false;
        let mut pieces: Vec<Piece> = Vec::new();
        for seg in &template.segments {
            let text = match seg {
                Segment::Literal(s) => s.as_str(),
                Segment::Field(Placeholder::CriteriaList) if !evidence_asked => {
                    evidence_asked = true;
                    criteria_and_evidence.as_str()
                }
                Segment::Field(Placeholder::CriteriaList) => criteria.as_str(),
                Segment::Field(Placeholder::CustomInstructions) => {
                    checklist.custom_instructions.as_str()
                }
                Segment::Field(Placeholder::Transcription) => {
                    pieces.push(Piece::Transcription);
                    continue;
                }
            };
            // Adjacent static text is merged so rendering is one push per piece.
            match pieces.last_mut() {
                Some(Piece::Static(s)) => s.push_str(text),
                _ => pieces.push(Piece::Static(text.to_string())),
            }
        }
        if !evidence_asked {
            let ending = format!("\n\n{EVIDENCE_INSTRUCTION}");
            match pieces.last_mut() {
                Some(Piece::Static(s)) => s.push_str(&ending),
                _ => pieces.push(Piece::Static(ending)),
            }
        }
        let static_len = pieces
            .iter()
            .map(|p| match p {
                Piece::Static(s) => s.len(),
                Piece::Transcription => 0,
            })
            .sum();
        // Unit separators keep "ab"+"c" and "a"+"bc" apart.
        let version = content_version(&format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{EVIDENCE_INSTRUCTION}",
            template.source, criteria, checklist.custom_instructions
        ));
        PromptBuilder {
            pieces,
            static_len,
            version,
        }
    }

    /// Rearranges the pieces for `layout`. In the cached layout a template whose only
    /// transcript already comes last is left as it is.
    pub fn layout(mut self, layout: PromptLayout) -> PromptBuilder {
        let transcript_last_only = matches!(self.pieces.last(), Some(Piece::Transcription))
            && self
                .pieces
                .iter()
                .filter(|p| matches!(p, Piece::Transcription))
                .count()
                == 1;
        if layout == PromptLayout::Inline || transcript_last_only {
            return self;
        }
        let mut prefix = String::new();
        for p in &self.pieces {
            match p {
                Piece::Static(s) => prefix.push_str(s),
                Piece::Transcription => prefix.push_str(TRANSCRIPT_MOVED),
            }
        }
        prefix.push_str(TRANSCRIPT_HEADING);
        self.static_len = prefix.len();
        self.version = content_version(&format!("{}\u{1f}cached", self.version));
        self.pieces = vec![Piece::Static(prefix), Piece::Transcription];
        self
    }

    /// The prompt for one call: the template with every placeholder substituted.
    pub fn render(&self, transcription_text: &str) -> String {
        let transcripts = self
            .pieces
            .iter()
            .filter(|p| matches!(p, Piece::Transcription))
            .count();
        let mut out =
            String::with_capacity(self.static_len + transcripts * transcription_text.len());
        for p in &self.pieces {
            match p {
                Piece::Static(s) => out.push_str(s),
                Piece::Transcription => out.push_str(transcription_text),
            }
        }
        out
    }

    /// Content hash of the template, the criteria list and the instructions
    /// (`calls.prompt_version`).
    pub fn version(&self) -> String {
        self.version.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Criterion;

    #[test]
    fn cached_layout_puts_the_transcript_last_and_keeps_the_rest() {
        let t = Template::parse(
            "Роль.\n{transcription}\nЧек-лист:\n{criteria_list}\nФормат: {{\"a\": 1}}",
        )
        .unwrap();
        let c = checklist();
        let inline = PromptBuilder::new(t.clone(), &c);
        let cached = PromptBuilder::new(t, &c).layout(PromptLayout::Cached);
        let (a, b) = (
            cached.render("operator: Алло\n"),
            cached.render("client: Да\n"),
        );
        let shared = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
        assert_eq!(
            shared,
            a.chars().count() - "operator: Алло\n".chars().count()
        );
        assert!(a.ends_with("ТРАНСКРИПЦИЯ ЗВОНКА:\noperator: Алло\n"), "{a}");
        assert!(
            a.contains(TRANSCRIPT_MOVED)
                && a.contains("Формат: {\"a\": 1}")
                && a.contains("КРИТЕРИЙ: Назвал имя")
        );
        assert_ne!(inline.version(), cached.version());
        assert!(inline.render("X").starts_with("Роль.\nX\nЧек-лист:"));
    }

    #[test]
    fn a_template_that_ends_with_the_transcript_is_already_cache_friendly() {
        let t = Template::parse("{criteria_list}\nЗвонок:\n{transcription}").unwrap();
        let c = checklist();
        let inline = PromptBuilder::new(t.clone(), &c);
        let cached = PromptBuilder::new(t, &c).layout(PromptLayout::Cached);
        assert_eq!(inline.render("abc"), cached.render("abc"));
        assert_eq!(inline.version(), cached.version());
    }

    fn crit(cat: &str, name: &str, max: f64) -> Criterion {
        Criterion {
            category: cat.into(),
            indicator: name.into(),
            comment: format!("комментарий к {name}"),
            max_score: max,
            conditions: format!("условия для {name}"),
            critical: false,
        }
    }

    fn checklist() -> Checklist {
        Checklist {
            criteria: vec![
                crit("Приветствие", "Назвал имя", 5.0),
                crit("Продажа", "Озвучил лимит", 2.5),
            ],
            custom_instructions: "Будь строг.".into(),
        }
    }

    #[test]
    fn renders_all_placeholders_and_unescapes_doubled_braces() {
        let t = Template::parse(
            "Чек-лист:\n{criteria_list}Инструкции: {custom_instructions}\n\
             Звонок:\n{transcription}\nОтвет: {{\"a\": {{\"b\": 1}}}}",
        )
        .unwrap();
        let p = PromptBuilder::new(t, &checklist());
        let out = p.render("operator: {не поле}\nclient: да\n");
        let expected = format!(
            "Чек-лист:\n{}{EVIDENCE_INSTRUCTION}Инструкции: Будь строг.\nЗвонок:\noperator: {{не поле}}\nclient: да\n\
             \nОтвет: {{\"a\": {{\"b\": 1}}}}",
            criteria_list(&checklist())
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn a_placeholder_may_repeat_and_surround_text() {
        let t = Template::parse("{transcription}|{transcription}").unwrap();
        let p = PromptBuilder::new(t, &Checklist::default());
        assert_eq!(p.render("x"), format!("x|x\n\n{EVIDENCE_INSTRUCTION}"));
        let t = Template::parse("{transcription}").unwrap();
        assert_eq!(
            PromptBuilder::new(t, &Checklist::default()).render(""),
            format!("\n\n{EVIDENCE_INSTRUCTION}")
        );
    }

    #[test]
    fn evidence_is_asked_once_in_the_shared_prefix() {
        let c = checklist();
        // After the criteria list when the template has one.
        let t = Template::parse("А\n{criteria_list}Б\n{transcription}\n{criteria_list}").unwrap();
        let out = PromptBuilder::new(t, &c).render("T");
        assert_eq!(out.matches(EVIDENCE_INSTRUCTION).count(), 1);
        assert!(out.contains(&format!("{}{EVIDENCE_INSTRUCTION}Б", criteria_list(&c))));
        // Without a criteria list, at the end; the cached layout then moves the transcript
        // after it, so the shared prefix holds the instruction and is longer than before.
        let t = Template::parse("Роль\n{transcription}").unwrap();
        let cached = PromptBuilder::new(t, &c).layout(PromptLayout::Cached);
        let out = cached.render("operator: Алло\n");
        assert!(
            out.ends_with("ТРАНСКРИПЦИЯ ЗВОНКА:\noperator: Алло\n"),
            "{out}"
        );
        assert!(out.contains(EVIDENCE_INSTRUCTION));
        // The example templates keep their layout and gain the instruction in the prefix.
        let t = Template::parse(include_str!("../../prompts/department1.txt")).unwrap();
        let cached = PromptBuilder::new(t, &c).layout(PromptLayout::Cached);
        let a = cached.render("operator: X\n");
        let prefix = a.strip_suffix("operator: X\n").unwrap();
        assert!(prefix.contains(EVIDENCE_INSTRUCTION));
    }

    #[test]
    fn criteria_list_has_the_contract_layout() {
        assert_eq!(
            criteria_list(&checklist()),
            "КАТЕГОРИЯ: Приветствие\nКРИТЕРИЙ: Назвал имя\nКОММЕНТАРИЙ: комментарий к Назвал имя\n\
             МАКСИМАЛЬНЫЙ БАЛЛ: 5\nУСЛОВИЯ ОЦЕНКИ: условия для Назвал имя\n\n\
             КАТЕГОРИЯ: Продажа\nКРИТЕРИЙ: Озвучил лимит\nКОММЕНТАРИЙ: комментарий к Озвучил лимит\n\
             МАКСИМАЛЬНЫЙ БАЛЛ: 2.5\nУСЛОВИЯ ОЦЕНКИ: условия для Озвучил лимит\n\n"
        );
        assert_eq!(criteria_list(&Checklist::default()), "");
        assert_eq!(format_score(10.0), "10");
        assert_eq!(format_score(0.25), "0.25");
    }

    #[test]
    fn unknown_placeholder_is_named_with_its_position() {
        let e = Template::parse("ok {transcription}\n  {transcript}").unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownPlaceholder {
                name: "transcript".into(),
                line: 2,
                column: 3
            }
        );
        assert!(e.to_string().contains("{transcript}"), "{e}");
        for bad in [
            "{} {transcription}",
            "{0}{transcription}",
            "{transcription!r}",
            "{ transcription }",
        ] {
            assert!(
                matches!(
                    Template::parse(bad),
                    Err(TemplateError::UnknownPlaceholder { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn lone_braces_are_rejected_like_python_does() {
        assert_eq!(
            Template::parse("{transcription} {\"a\": 1}").unwrap_err(),
            TemplateError::UnknownPlaceholder {
                name: "\"a\": 1".into(),
                line: 1,
                column: 17
            }
        );
        assert_eq!(
            Template::parse("{transcription}\nend }").unwrap_err(),
            TemplateError::LoneCloseBrace { line: 2, column: 5 }
        );
        assert_eq!(
            Template::parse("{transcription} {").unwrap_err(),
            TemplateError::LoneOpenBrace {
                line: 1,
                column: 17
            }
        );
        assert_eq!(
            Template::parse("{transcription} {open").unwrap_err(),
            TemplateError::LoneOpenBrace {
                line: 1,
                column: 17
            }
        );
        assert_eq!(
            Template::parse("{transcription} {a{b}}").unwrap_err(),
            TemplateError::BraceInPlaceholder {
                line: 1,
                column: 19
            }
        );
        // `}}}` is an escaped brace followed by a lone one.
        assert!(matches!(
            Template::parse("{transcription} }}}"),
            Err(TemplateError::LoneCloseBrace { column: 19, .. })
        ));
    }

    #[test]
    fn template_without_transcription_is_rejected() {
        assert_eq!(
            Template::parse("{criteria_list} {{transcription}}").unwrap_err(),
            TemplateError::NoTranscription
        );
    }

    #[test]
    fn version_follows_template_checklist_and_instructions() {
        let t = Template::parse("{criteria_list}{transcription}").unwrap();
        let a = PromptBuilder::new(t.clone(), &checklist()).version();
        assert_eq!(a, PromptBuilder::new(t.clone(), &checklist()).version());
        let mut other = checklist();
        other.custom_instructions.push('!');
        assert_ne!(a, PromptBuilder::new(t.clone(), &other).version());
        let mut other = checklist();
        other.criteria[1].max_score = 3.0;
        assert_ne!(a, PromptBuilder::new(t, &other).version());
        let t2 = Template::parse("{criteria_list}\n{transcription}").unwrap();
        assert_ne!(a, PromptBuilder::new(t2, &checklist()).version());
    }

    #[test]
    fn example_department_templates_parse_and_render() {
        for (name, text) in [
            ("department1", include_str!("../../prompts/department1.txt")),
            ("department2", include_str!("../../prompts/department2.txt")),
        ] {
            let t = Template::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            for p in Placeholder::ALL {
                assert!(t.uses(p), "{name} does not use {{{}}}", p.name());
            }
            let out = PromptBuilder::new(t, &checklist()).render("operator: Добрый день\n");
            assert!(out.contains("operator: Добрый день\n"), "{name}");
            assert!(out.contains("КРИТЕРИЙ: Озвучил лимит"), "{name}");
            assert!(out.contains("Будь строг."), "{name}");
            assert!(out.contains("\"is_sales_call\""), "{name}");
            assert!(!out.contains("{{") && !out.contains("}}"), "{name}");
            // The JSON example in the template is itself valid JSON once unescaped.
            let start = out
                .find("{\n")
                .unwrap_or_else(|| panic!("{name}: no JSON example"));
            let example: serde_json::Value = serde_json::Deserializer::from_str(&out[start..])
                .into_iter()
                .next()
                .unwrap()
                .unwrap_or_else(|e| panic!("{name}: JSON example: {e}"));
            for key in [
                "is_sales_call",
                "total_score",
                "max_possible_score",
                "performance_percentage",
                "evaluations",
                "recommendations",
                "agreements",
                "decline_reasons",
            ] {
                assert!(example.get(key).is_some(), "{name}: example lacks {key}");
            }
        }
    }
}
