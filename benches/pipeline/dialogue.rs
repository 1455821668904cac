//! Transcripts of realistic length for the benchmark's calls: a credit-card sales dialogue
//! of any number of phrases, varied per call (client name, amount) so no two prompts are
//! the same after the shared template and checklist.

use callq::domain::{Phrase, Speaker, Transcript};
use callq_fakes::{FakeCall, scenario};
use chrono::NaiveDate;

/// The phrases of one call: (is_operator, text template). `{op}` is the operator's first
/// name, `{client}` the client's, `{amount}` the credit limit, `{phone}` and `{email}` what
/// the client dictates (so PII_MASKING has something to replace). No fake-LLM markers
/// (`[…]`).
const DIALOGUE: &[(bool, &str)] = &[
    (
        true,
        "Добрый день! Меня зовут {op}, компания «Пример», отдел продаж. Удобно сейчас говорить пару минут?",
    ),
    (false, "Здравствуйте. Да, минутка есть, слушаю вас."),
    (
        true,
        "{client}, вы в прошлом месяце оставляли заявку на нашем сайте на кредитную карту. Расскажите, пожалуйста, для каких покупок вы её планируете использовать?",
    ),
    (
        false,
        "В основном продукты и бензин, иногда покупки в интернете. Хотелось бы, чтобы был кешбэк и не было платы за обслуживание.",
    ),
    (
        true,
        "Понимаю. А какой кредитный лимит вам был бы удобен? Обычно клиенты с похожими расходами берут от {amount} рублей.",
    ),
    (
        false,
        "Думаю, {amount} рублей хватит, больше мне не нужно, не хочу влезать в долги.",
    ),
    (
        true,
        "Хорошо. Тогда могу предложить карту «Пример Плюс»: до пятидесяти пяти дней без процентов, кешбэк пять процентов на продукты и АЗС и бесплатное обслуживание при тратах от трёх тысяч в месяц.",
    ),
    (
        false,
        "А если я не уложусь в беспроцентный период, какая будет ставка? И есть ли комиссия за снятие наличных?",
    ),
    (
        true,
        "Ставка после льготного периода от двадцати девяти процентов годовых, точную сумму платежа вы всегда видите в приложении, и мы заранее присылаем напоминание. Снятие наличных до пятидесяти тысяч в месяц без комиссии.",
    ),
    (
        false,
        "Понятно. А доставка карты платная? Я работаю до семи вечера, днём дома никого нет.",
    ),
    (
        true,
        "Доставка бесплатная, курьер привезёт карту в удобное время, в том числе вечером после семи или в субботу. Давайте я оформлю заявку прямо сейчас?",
    ),
    (
        false,
        "Давайте, только на субботу, пожалуйста, лучше с утра. Курьеру звоните на {phone}, чек пришлите на {email}.",
    ),
    (
        true,
        "Отлично, {client}. Подытожу: карта «Пример Плюс», лимит {amount} рублей, доставка в субботу утром. Завтра придёт СМС с подтверждением. Спасибо за время, всего доброго!",
    ),
    (false, "Спасибо, до свидания."),
];

/// Where a dialogue longer than [`DIALOGUE`] continues: the middle part again (questions
/// and answers), as long calls go round the same topics.
const REPEAT_FROM: usize = 2;
const REPEAT_TO: usize = 12;

const CLIENTS: &[&str] = &[
    "Ольга Николаевна",
    "Дмитрий",
    "Марина Сергеевна",
    "Алексей Петрович",
    "Наталья",
    "Виктор Андреевич",
    "Екатерина",
];

/// `k` phrases of the dialogue for call number `i`, operator first name `op`.
pub fn phrases(i: usize, op: &str, k: usize) -> Vec<(bool, String)> {
    let client = CLIENTS[i % CLIENTS.len()];
    let amount = format!("{}", 30_000 + (i * 7 % 20) * 5_000);
    let phone = format!("+7 916 {:03}-{:02}-{:02}", i % 1000, i % 97, i % 89);
    let email = format!("client{i}@mail.ru");
    (0..k)
        .map(|j| {
            let idx = if j < DIALOGUE.len() {
                j
            } else {
                REPEAT_FROM + (j - DIALOGUE.len()) % (REPEAT_TO - REPEAT_FROM)
            };
            let (is_operator, text) = DIALOGUE[idx];
            let text = text
                .replace("{op}", op)
                .replace("{client}", client)
                .replace("{amount}", &amount)
                .replace("{phone}", &phone)
                .replace("{email}", &email);
            (is_operator, text)
        })
        .collect()
}

/// `scenario::sample_calls(day, n)` with each transcript replaced by `k` dialogue phrases.
pub fn calls(day: NaiveDate, n: usize, k: usize) -> Vec<FakeCall> {
    scenario::sample_calls(day, n)
        .into_iter()
        .enumerate()
        .map(|(i, mut call)| {
            let op = call
                .operator_name
                .split_whitespace()
                .nth(1)
                .unwrap_or("Анна")
                .to_string();
            call.phrases = phrases(i, &op, k);
            call
        })
        .collect()
}

/// A transcript of `k` phrases in the form callq stores it (`Transcript::to_text`).
pub fn transcript_text(i: usize, k: usize) -> String {
    let phrases = phrases(i, "Анна", k)
        .into_iter()
        .map(|(is_operator, text)| Phrase {
            speaker: if is_operator {
                Speaker::Operator
            } else {
                Speaker::Client
            },
            text,
        })
        .collect();
    Transcript { phrases }.to_text()
}
