"""The tagger on synthetic examples: every edge case of the tagging issue, multilingual positives,
and taxonomy validation errors that name the file and line."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from newswire.processors.tagging import Tagger, TaxonomyError, _covers, _reach, load_taxonomy
from newswire.processors.taxonomy import load_taxonomy_text
from newswire.records import TopicTag


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    return Tagger(load_taxonomy())


def slugs(tags: list[TopicTag]) -> set[str]:
    return {t.slug for t in tags}


# --------------------------------------------------------------------------- shipped taxonomy


def test_shipped_taxonomy_has_the_four_topics_and_a_content_version() -> None:
    tax = load_taxonomy()
    assert set(tax.slugs) == {"afghanistan", "russia", "china", "civil-military"}
    assert tax.version.startswith("builtin-") and len(tax.version) == len("builtin-") + 12
    assert load_taxonomy().version == tax.version


def test_tags_are_sorted_scored_and_explain_themselves(tagger: Tagger) -> None:
    tags = tagger.tag(
        "Putin and Xi sign pact in Moscow",
        "Russian President Vladimir Putin and Chinese leader Xi Jinping signed an energy pact in Moscow. "
        "The Kremlin said Russia and China would deepen ties; Beijing called it historic.",
    )
    assert slugs(tags) == {"russia", "china"}
    assert [t.score for t in tags] == sorted((t.score for t in tags), reverse=True)
    for t in tags:
        assert 0.0 < t.score <= 1.0
        assert t.matches and all(c >= 1 for c in t.matches.values())
    russia = next(t for t in tags if t.slug == "russia")
    assert russia.matches["putin"] == 2 and russia.matches["kremlin"] == 1


# --------------------------------------------------------------------------- the traps

LONG_FILLER = (
    "The company reported quarterly revenue above expectations, citing strong demand in its home market. "
    "Analysts said margins improved as shipping costs eased and the product line was refreshed. "
) * 6


def test_made_in_china_is_not_china(tagger: Tagger) -> None:
    text = "The new headphones, made in China, cost 99 dollars. " + LONG_FILLER
    assert "china" not in slugs(tagger.tag("Review: budget headphones that sound great", text))


def test_a_country_in_a_list_is_not_a_subject(tagger: Tagger) -> None:
    text = (
        LONG_FILLER
        + "The firm sells in the United States, Germany, Russia, China, India and Brazil. "
        + LONG_FILLER
    )
    assert slugs(tagger.tag("Sneaker maker beats forecasts", text)) == set()


def test_a_dateline_is_not_a_subject(tagger: Tagger) -> None:
    # The dateline gives no evidence at all (not merely too little).
    text = "MOSCOW (Reuters) - Oil prices rose on Monday as OPEC signalled output cuts. " + LONG_FILLER
    scores = {t.slug: t for t in tagger.score("Oil climbs on OPEC signals", text)}
    assert scores["russia"].matches == {} and scores["russia"].score == 0.0
    text = "KABUL, Afghanistan (AP) — A cricket team won its match. " + LONG_FILLER
    assert {t.slug: t for t in tagger.score(None, text)}["afghanistan"].matches == {}
    # Without the dateline shape, the same place name does count.
    text = "Officials in Moscow said oil prices rose. " + LONG_FILLER
    assert {t.slug: t for t in tagger.score(None, text)}["russia"].matches == {"moscow": 1}
    text_cn = "新华社北京6月3日电 国际油价周一上涨。" + "分析人士认为需求回升。" * 10
    assert "北京" not in {t.slug: t for t in tagger.score("国际油价上涨", text_cn)}["china"].matches


def test_a_russian_tennis_players_match_report_is_not_russia(tagger: Tagger) -> None:
    text = (
        "Russian Daniil Medvedev beat Dominic Thiem in straight sets to reach the US Open final. "
        "The Russian fourth seed served 14 aces and broke twice in the third set, and the Russian "
        "will face Novak Djokovic in the final on Sunday. " + "He said the tiebreak was the key. " * 5
    )
    assert "russia" not in slugs(tagger.tag("Medvedev sweeps Thiem aside to reach final", text))


def test_borussia_dortmund_is_not_russia(tagger: Tagger) -> None:
    text = "Borussia Dortmund beat Bayern 3-1; Borussia's striker scored twice at the Westfalenstadion."
    assert slugs(tagger.tag("Borussia Dortmund win Klassiker", text)) == set()


def test_general_electric_is_not_civil_military(tagger: Tagger) -> None:
    text = "General Electric shares rose after the general manager of its aviation unit announced orders."
    assert slugs(tagger.tag("General Electric lifts outlook", text)) == set()


def test_coup_franc_is_not_a_coup(tagger: Tagger) -> None:
    text = "Sur un coup franc de Messi à la 89e minute, le PSG l'emporte. Un coup franc magnifique."
    assert slugs(tagger.tag("Le PSG gagne sur un coup franc", text)) == set()


def test_junta_de_andalucia_is_not_a_junta(tagger: Tagger) -> None:
    text = "La Junta de Andalucía aprobó el presupuesto. El presidente de la Junta de Andalucía lo defendió."
    assert slugs(tagger.tag("La Junta de Andalucía aprueba las cuentas", text)) == set()


def test_peking_sucht_den_superstar_is_not_china(tagger: Tagger) -> None:
    text = "Die Castingshow „Peking sucht den Superstar“ geht in die zweite Staffel. Die Jury ist neu."
    assert slugs(tagger.tag("Peking sucht den Superstar: neue Staffel", text)) == set()


def test_georgia_the_us_state_is_not_russia(tagger: Tagger) -> None:
    text = "Georgia's Senate runoffs in Atlanta drew record turnout; Governor Kemp certified the results."
    assert slugs(tagger.tag("Georgia runoff turnout breaks records", text)) == set()


def test_georgia_state_context_suppresses_a_georgia_country_term() -> None:
    # The mechanism a user's "georgia" (the country) topic would use: document-level "unless" cues.
    tax = load_taxonomy_text(
        "slug: georgia\nterms:\n  - match: [georgia, tbilisi]\n    weight: 6\n"
        "    unless: [atlanta, peach state, kemp, savannah, u.s. state]\n"
    )
    tagger = Tagger(tax)
    assert (
        slugs(tagger.tag("Georgia runoff", "Voters in Atlanta lined up; Kemp certified the count.")) == set()
    )
    assert slugs(tagger.tag("Georgia protests", "Protesters in Tbilisi rallied against the government.")) == {
        "georgia"
    }


def test_moscow_idaho_is_not_russia(tagger: Tagger) -> None:
    text = "MOSCOW, Idaho - Police in Moscow, Idaho, said the University of Idaho campus reopened."
    assert slugs(tagger.tag("Moscow police update investigation", text)) == set()


# --------------------------------------------------------------------------- positives per language


@pytest.mark.parametrize(
    ("title", "text", "slug"),
    [
        (
            "Taliban seize Kabul as Afghan government collapses",
            "The Taliban entered Kabul on Sunday and President Ashraf Ghani fled Afghanistan.",
            "afghanistan",
        ),
        (
            "Taliban erobern Kabul",
            "Die Taliban haben die afghanische Hauptstadt eingenommen. Afghanistans Präsident floh.",
            "afghanistan",
        ),
        (
            "Les talibans entrent dans Kaboul",
            "Les talibans ont pris le contrôle de Kaboul ; le président afghan a quitté l'Afghanistan.",
            "afghanistan",
        ),
        (
            "Los talibanes toman Kabul",
            "Los talibanes entraron en Kabul y el presidente afgano huyó de Afganistán.",
            "afghanistan",
        ),
        (
            "Талибы вошли в Кабул",
            "Движение «Талибан» взяло под контроль Кабул, президент Афганистана покинул страну.",
            "afghanistan",
        ),
        ("塔利班进入喀布尔", "塔利班武装进入阿富汗首都喀布尔，阿富汗总统加尼已离开。", "afghanistan"),
        (
            "Kremlin rejects sanctions",
            "Russia's Kremlin said Moscow would retaliate against new sanctions, Putin's spokesman said.",
            "russia",
        ),
        (
            "Kreml weist Vorwürfe zurück",
            "Russland bestreitet die Vergiftung Nawalnys. Der Kreml in Moskau sprach von Provokation.",
            "russia",
        ),
        (
            "Le Kremlin dément",
            "La Russie dément tout lien avec l'empoisonnement de Navalny, a indiqué le Kremlin à Moscou.",
            "russia",
        ),
        (
            "Rusia expulsa a diplomáticos",
            "El Kremlin anunció que Rusia expulsará a diez diplomáticos; Moscú acusa a Washington.",
            "russia",
        ),
        (
            "Путин подписал указ",
            "Президент России Владимир Путин подписал указ; в Кремле заявили, что Москва ответит.",
            "russia",
        ),
        ("普京签署法令", "俄罗斯总统普京签署法令，克里姆林宫表示莫斯科将作出回应。", "russia"),
        (
            "China warns Taiwan",
            "Beijing warned Taipei after Chinese jets crossed the median line; Xi Jinping's government said.",
            "china",
        ),
        (
            "China droht Taiwan",
            "Peking warnte Taipeh; chinesische Kampfjets flogen in die Zone. Chinas Regierung sprach von Warnung.",
            "china",
        ),
        (
            "La Chine met en garde Taïwan",
            "Pékin a averti Taipei après des incursions d'avions chinois ; la Chine parle de provocation.",
            "china",
        ),
        (
            "China advierte a Taiwán",
            "Pekín advirtió a Taipéi; el Gobierno chino dijo que China defenderá su soberanía.",
            "china",
        ),
        (
            "Китай предупредил Тайвань",
            "Пекин предупредил Тайвань; власти Китая заявили, что китайские самолеты продолжат полеты.",
            "china",
        ),
        ("中国警告台湾", "中国外交部表示，北京坚决反对，中方将采取一切必要措施。", "china"),
        (
            "Military seizes power in Guinea coup",
            (
                "Special forces officers staged a coup, detained the president and dissolved the government; "
                "the junta promised a transition."
            ),
            "civil-military",
        ),
        (
            "Militärputsch in Guinea",
            "Soldaten haben den Präsidenten festgenommen; die Militärjunta kündigte eine Übergangsregierung an.",
            "civil-military",
        ),
        (
            "Coup d'État en Guinée",
            "Des militaires ont arrêté le président ; la junte promet une transition.",
            "civil-military",
        ),
        (
            "Golpe de Estado en Guinea",
            "Los militares detuvieron al presidente y la junta militar disolvió el Gobierno.",
            "civil-military",
        ),
        (
            "Военный переворот в Гвинее",
            "Военные задержали президента; хунта объявила о переходном периоде.",
            "civil-military",
        ),
        ("几内亚发生军事政变", "几内亚军人扣押总统，宣布解散政府，军政府承诺过渡。", "civil-military"),
        (
            "Milley defends calls to Chinese general",
            (
                "Gen. Mark Milley, chairman of the Joint Chiefs of Staff, told senators his calls were meant to "
                "reassure Beijing and were known to civilian leaders, as lawmakers questioned civilian control."
            ),
            "civil-military",
        ),
    ],
)
def test_positive_examples_in_six_languages(tagger: Tagger, title: str, text: str, slug: str) -> None:
    assert slug in slugs(tagger.tag(title, text))


def test_battlefield_report_alone_is_not_civil_military(tagger: Tagger) -> None:
    text = (
        "Army troops advanced on the town after heavy shelling; the military said soldiers captured two "
        "villages and destroyed artillery positions. Armed forces spokesmen reported casualties."
    )
    assert "civil-military" not in slugs(tagger.tag("Troops advance after shelling", text))


def test_long_article_with_a_passing_mention_is_not_tagged(tagger: Tagger) -> None:
    text = LONG_FILLER * 3 + "A rival in China also reported results. " + LONG_FILLER * 3
    assert slugs(tagger.tag("Earnings season rolls on", text)) == set()


def test_title_weighting_and_length_normalisation(tagger: Tagger) -> None:
    body = "Officials met on Tuesday. " * 10
    in_title = tagger.score("Russia expels diplomats", body)
    in_body = tagger.score("Officials meet", body + "Russia expels diplomats. ")
    r_title = next(t for t in in_title if t.slug == "russia").score
    r_body = next(t for t in in_body if t.slug == "russia").score
    assert r_title > r_body
    short = next(t for t in tagger.score(None, "Russia and the Kremlin. " + body) if t.slug == "russia")
    long_ = next(t for t in tagger.score(None, "Russia and the Kremlin. " + body * 40) if t.slug == "russia")
    assert short.score > long_.score


def test_explicit_lead_counts_more_than_body(tagger: Tagger) -> None:
    body = "Officials met on Tuesday to discuss the budget. " * 20
    with_lead = tagger.score(None, body + "Russia's Kremlin said.", lead="Russia's Kremlin said.")
    without = tagger.score(None, body + "Russia's Kremlin said.")
    assert (
        next(t for t in with_lead if t.slug == "russia").score
        > next(t for t in without if t.slug == "russia").score
    )


def test_inflected_forms_match_by_stem(tagger: Tagger) -> None:
    tags = tagger.tag(None, "Делегация Российской Федерации прибыла в Москву; в Кремле и в России довольны.")
    russia = next(t for t in tags if t.slug == "russia")
    assert {"российской", "москву", "кремле", "россии"} <= set(russia.matches)


def test_cjk_matches_as_substring_and_longest_term_wins() -> None:
    tax = load_taxonomy_text("slug: usa\nterms:\n  - match: [美国]\n    weight: 6\nexclude: [美国人寿]\n")
    tagger = Tagger(tax)
    # No spaces around 美国: still matched; the exclude phrase (a company name) hides it.
    assert slugs(tagger.tag(None, "他说美国政府将回应。")) == {"usa"}
    assert slugs(tagger.tag(None, "美国人寿公司发布财报。")) == set()
    # Latin forms still need word boundaries, even next to CJK characters.
    tax2 = load_taxonomy_text("slug: x\nterms:\n  - match: [nato]\n    weight: 6\n")
    t2 = Tagger(tax2)
    assert slugs(t2.tag(None, "他说NATO会回应")) == {"x"}
    assert slugs(t2.tag(None, "the senator spoke")) == set()


def test_requires_and_context_terms() -> None:
    tax = load_taxonomy_text(
        """
slug: cm
terms:
  - match: coup
    weight: 6
    requires: [army, military]
  - match: [troops]
    weight: 6
    context: true
  - match: [junta]
    weight: 6
"""
    )
    tagger = Tagger(tax)
    assert slugs(tagger.tag(None, "A marketing coup for the brand.")) == set()
    assert slugs(tagger.tag(None, "The army staged a coup.")) == {"cm"}
    assert slugs(tagger.tag(None, "Troops advanced.")) == set()
    tags = tagger.tag(None, "The junta sent troops.")
    assert slugs(tags) == {"cm"} and tags[0].matches == {"junta": 1, "troops": 1}


def test_window_requires_the_cue_nearby() -> None:
    tax = load_taxonomy_text(
        "slug: w\nterms:\n  - match: [troops]\n    weight: 6\n    requires: [lockdown]\n    window: 30\n"
    )
    tagger = Tagger(tax)
    assert slugs(tagger.tag(None, "Troops were sent to enforce the lockdown.")) == {"w"}
    far = (
        "Troops were sent north. "
        + "The weather was fine and the roads were open. " * 5
        + "A lockdown began."
    )
    assert slugs(tagger.tag(None, far)) == set()


def test_dampen_cues_lower_the_score() -> None:
    base = "slug: d\nterms:\n  - match: [kremlin]\n    weight: 6\n"
    plain = Tagger(load_taxonomy_text(base))
    damped = Tagger(load_taxonomy_text(base + "dampen: [influencer]\ndampen_factor: 0.5\n"))
    text = "The Kremlin influencer posted again."
    assert damped.score(None, text)[0].score < plain.score(None, text)[0].score
    assert damped.score(None, "The Kremlin said.")[0].score == plain.score(None, "The Kremlin said.")[0].score


def test_an_enumerated_name_counts_less_than_a_name_in_a_sentence(tagger: Tagger) -> None:
    listed = {t.slug: t for t in tagger.score(None, "Exports rose to Germany, Russia, India and Brazil.")}
    alone = {t.slug: t for t in tagger.score(None, "Exports to Russia rose sharply.")}
    assert 0 < listed["russia"].score < alone["russia"].score
    assert "russia" not in slugs(tagger.tag(None, "Exports rose to Germany, Russia, India and Brazil."))


def test_the_us_trump_russia_probe_is_not_russia(tagger: Tagger) -> None:
    text = "Senate Republicans say the Russia probe will focus on who knew what and when."
    assert "russia" not in slugs(tagger.tag("Senator on the Russia probe's biggest questions", text))


def test_troops_at_home_and_generals_in_politics_are_civil_military(tagger: Tagger) -> None:
    assert "civil-military" in slugs(
        tagger.tag("National Guard arrives as looting spreads", "Police were overwhelmed by protests.")
    )
    assert "civil-military" in slugs(
        tagger.tag(None, "Soldiers were deployed to enforce the lockdown in the capital, the army said.")
    )
    assert "civil-military" in slugs(
        tagger.tag(
            "Defense Secretary defies Trump over troops", "The Pentagon chief clashed with the president."
        )
    )
    # Military words without a civilian or domestic relation are not enough.
    assert "civil-military" not in slugs(
        tagger.tag("Pentagon releases UFO videos", "The Pentagon released three Navy videos.")
    )


@pytest.mark.parametrize(
    ("title", "text"),
    [
        (
            "Hong Kong activists jailed under national security law",
            (
                "Pro-democracy activists in Hong Kong were sentenced under the national security law imposed by "
                "Beijing, as the city's government defended the crackdown on protesters."
            ),
        ),
        (
            "UN report on Xinjiang detention camps",
            (
                "A United Nations report said the detention of Uyghurs in Xinjiang may amount to crimes against "
                "humanity; the Chinese government rejected the findings."
            ),
        ),
        (
            "Dalai Lama succession dispute",
            (
                "Beijing insists it will choose the next Dalai Lama, while Tibetan exiles say the Chinese Communist "
                "Party has no role in Tibet's religious succession."
            ),
        ),
    ],
)
def test_hong_kong_xinjiang_and_tibet_politics_are_china(tagger: Tagger, title: str, text: str) -> None:
    assert slugs(tagger.tag(title, text)) == {"china"}


def test_hong_kong_as_a_chefs_past_is_not_china(tagger: Tagger) -> None:
    text = (
        "A new restaurant opened downtown serving dumplings, with a chef who trained in Hong Kong before "
        "moving here ten years ago. The menu has twenty kinds of dumplings and noodle soups."
    )
    assert tagger.tag("Best dumplings in town", text) == []


def test_purges_of_officers_military_courts_and_oversight_are_civil_military(tagger: Tagger) -> None:
    purge = (
        "The government purged dozens of senior army officers and generals after the failed uprising, "
        "replacing the military commanders with loyalists."
    )
    court = (
        "Protesters and journalists arrested during the demonstrations will be tried by a military court, "
        "rights groups said, condemning military tribunals for civilians."
    )
    oversight = (
        "Senators on the Armed Services Committee questioned the chairman of the Joint Chiefs at a hearing on "
        "his calls to his Chinese counterpart in the last weeks of the Trump administration."
    )
    assert "civil-military" in slugs(tagger.tag("Army officers purged after failed uprising", purge))
    assert "civil-military" in slugs(tagger.tag("Civilians face military court", court))
    assert "civil-military" in slugs(tagger.tag("Senators grill Joint Chiefs chairman", oversight))
    # a purge with no armed forces, and a military court over soldiers only, are not the relation
    assert "civil-military" not in slugs(
        tagger.tag("Party purges members", "The party purged three councillors who voted against the budget.")
    )
    assert "civil-military" not in slugs(
        tagger.tag(
            "Sergeant convicted", "A military court convicted a sergeant of theft from the base store."
        )
    )


def test_case_sensitive_terms() -> None:
    tax = load_taxonomy_text("slug: c\nterms:\n  - match: [PLA]\n    weight: 6\n    case_sensitive: true\n")
    tagger = Tagger(tax)
    assert slugs(tagger.tag(None, "The PLA held drills.")) == {"c"}
    assert slugs(tagger.tag(None, "Pla de Mallorca is a region.")) == set()


def test_empty_input_gives_no_tags(tagger: Tagger) -> None:
    assert tagger.tag(None, "") == []
    assert tagger.tag("", "   ") == []


# --------------------------------------------------------------------------- validation


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_directory_of_files_loads_with_its_name_in_the_version(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "slug: alpha\nterms: [alpha]\n")
    write(
        tmp_path, "b.yml", "topics:\n  - slug: beta\n    terms: [beta]\n  - slug: gamma\n    terms: [gamma]\n"
    )
    tax = load_taxonomy(tmp_path)
    assert tax.slugs == ["alpha", "beta", "gamma"]
    assert tax.version.startswith(f"{tmp_path.name}-")


def test_version_ignores_comments_but_not_content(tmp_path: Path) -> None:
    a = load_taxonomy(write(tmp_path, "t.yaml", "slug: a\nterms: [x]\n"))
    b = load_taxonomy(write(tmp_path, "t.yaml", "# comment\nslug: a\nterms:\n  - x\n"))
    c = load_taxonomy(write(tmp_path, "t.yaml", "slug: a\nterms: [y]\n"))
    assert a.version == b.version != c.version


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("slug: a\nterms:\n  - match: [x]\n    wieght: 2\n", 4, "unknown term key 'wieght'"),
        ("slug: a\nterms:\n  - match: [x]\n    weight: heavy\n", 4, "weight must be a number"),
        ("slug: a\nterms:\n  - match: [x]\n    weight: -1\n", 4, "weight must be in"),
        ("slug: a\nthreshold: 1.5\nterms: [x]\n", 2, "threshold must be in"),
        ("slug: Bad Slug\nterms: [x]\n", 1, "slug 'Bad Slug'"),
        ("slug: a\nterms:\n  - weight: 2\n", 3, "term has no 'match'"),
        ("slug: a\nterms:\n  - match: [x]\n  - match: ['ab*c']\n", 4, "'*' is only allowed at the end"),
        ("slug: a\nterms:\n  - match: [x]\n  - match: ['iran *']\n", 4, "the '*' must follow the word"),
        ("slug: a\nterms:\n  - match: [x]\n    requires: [y]\n    window: 1.5\n", 5,
         "window is a number of characters, got 1.5"),
        # a form that can never count: an earlier unconditional term has it, or it is an exclude phrase
        ("slug: a\nterms:\n  - match: [iran]\n    weight: 4\n  - match: [iran]\n    label: iran2\n", 5,
         "'iran' is already a form of the term at "),
        ("slug: a\nexclude: [iran]\nterms:\n  - match: [iran]\n", 4, "'iran' is also an exclude phrase"),
        ("slug: a\nterms: [x]\n---\nslug: b\nterms: [y]\n", 3,
         "expected a single document in the stream but found another document (a second '---' document"),
        ("slug: a\nterms:\n  - match: [x]\n   weight: 2\n", 4, "(check this line's indentation"),
        ("slug: a\nname: see also: taiwan\nterms: [x]\n", 2, "(a ': ' inside a value: put the value in quotes"),
        ("slug: a\nterms: []\n", 2, "non-empty list"),
        ("slug: a\n", 1, "has no 'terms'"),
        ("slug: a\nterms:\n  - match: [x\n", 4, "YAML syntax error"),
        ("slug: a\nterms:\n  - match: [x]\n    context: true\n", 3, "only context terms"),
        ("slug: a\nterms:\n  - match: [yes, no]\n", 3, "must be a string"),
        ("slug: a\ncolour: red\nterms: [x]\n", 2, "unknown topic key 'colour'"),
        ("slug: a\nterms: [x]\nslug: b\n", 3, "duplicate key 'slug'"),
        ("- a\n- b\n", 1, "expected a mapping"),
        ("", 1, "empty file"),
        # a number in quotes is a string; one out of range says the range, not "must be a number"
        ('slug: a\nterms:\n  - match: [x]\n    weight: "3"\n', 4, "weight must be a number, got the string '3' (remove the quotes)"),
        ("slug: a\nterms:\n  - match: [x]\n    weight: 1e400\n", 4, "weight must be in (0, 100], got 1e400"),
        ("slug: a\nterms:\n  - match: [x]\n    weight:\n", 4, "weight is empty"),
        # scores stay below 1: a threshold of 1 would never tag
        ("slug: a\nthreshold: 1\nterms: [x]\n", 2, "threshold must be in (0, 1), got 1 (scores are below 1"),
        ("slug: a\nthreshold: 0\nterms: [x]\n", 2, "threshold must be in (0, 1), got 0"),
        ("slug:\nterms: [x]\n", 1, "slug is empty"),
        ('slug: ""\nterms: [x]\n', 1, "slug is empty"),
        ("slug: a\nterms:\n  -\n", 3, "term is empty"),
        # characters YAML refuses: the line and column they are on, in one line
        ("slug: a\n\x1bterms: [x]\n", 2, "control character U+001B (column 1) is not allowed"),
        ("slug: a\nterms: [x]\n# ok\n  \x00\n", 4, "control character U+0000 (column 3)"),
        ("slug: a\nterms:\n  - x\x0c\n", 3, "control character U+000C (column 6)"),
        # values YAML cannot construct: one line, not an internal error
        ("slug: a\nterms:\n  - 2021-13-45\n", 3, "term: '2021-13-45' is not a valid timestamp"),
        ("slug: a\nterms:\n  - match: [x]\n    weight: !!int abc\n", 4, "weight: 'abc' is not a valid int"),
        ("slug: a\nterms:\n  - !!python/object:os.system x\n", 3, "term: YAML error: could not determine a constructor"),
        # nesting that would overflow the YAML composer's recursion
        ("slug: a\nterms: " + "[" * 5000 + "\n", 2, "nested more than 64 levels deep"),
        # deep enough for the limit, not for libyaml's own: the fast path hands it to the careful one
        ("slug: a\nterms: " + "[" * 70 + "x" + "]" * 70 + "\n", 2, "nested more than 64 levels deep"),
        ("slug: a\nterms: " + "{a: " * 5000 + "\n", 2, "nested more than 64 levels deep"),
        # its topic stream's name would pass Kafka's 249 characters: the broker refused it mid-run
        ("name: x\nslug: " + "a" * 201 + "\nterms: [x]\n", 2, "slug is 201 characters; at most 200"),
        # the earlier stem matches the same word first: the weight 3 never counted, and check said OK
        ("slug: a\nterms:\n  - match: [ukrain*]\n  - match: [ukraine]\n    weight: 3\n", 4,
         "'ukraine' begins with the stem 'ukrain*' of the term at"),
    ],
)
def test_validation_errors_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, "topic.yaml", text)
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert words in message
    assert "\n" not in message


def test_numbers_in_exponent_notation_are_numbers() -> None:
    # YAML 1.2 numbers PyYAML leaves as strings
    topic = load_taxonomy_text("slug: a\nthreshold: 5e-1\nterms:\n  - match: [x]\n    weight: 1e1\n").topics[0]
    assert (topic.threshold, topic.terms[0].weight) == (0.5, 10.0)
    assert load_taxonomy_text("slug: a\nthreshold: 0.9999\nterms: [x]\n").topics[0].threshold == 0.9999


def test_a_file_that_is_not_utf8_names_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("slug: a\nterms: [café]\n".encode("latin-1"))
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert str(info.value).startswith(f"{path}:2: not UTF-8 text (byte 0xe9")


def test_errors_about_a_whole_path_carry_no_line_zero(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (tmp_path / "nope.yaml", empty):
        with pytest.raises(TaxonomyError) as info:
            load_taxonomy(path)
        assert ":0:" not in str(info.value) and str(info.value).startswith(f"{path}: ")


def test_duplicate_slug_across_files_names_both(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "slug: same\nterms: [x]\n")
    write(tmp_path, "b.yaml", "\nslug: same\nterms: [y]\n")
    with pytest.raises(
        TaxonomyError, match=r"b\.yaml:2: topic slug 'same' is already defined at .*a\.yaml:1"
    ):
        load_taxonomy(tmp_path)


def test_missing_path_and_empty_dir_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="no such file"):
        load_taxonomy(tmp_path / "nope.yaml")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TaxonomyError, match=r"no .yaml or .yml files"):
        load_taxonomy(empty)


def test_taxonomy_error_is_a_value_error() -> None:
    assert issubclass(TaxonomyError, ValueError)


# --------------------------------------------------------------------------- learned combiner


def test_a_learned_combiner_rescores_but_never_tags_without_matches() -> None:
    base = "slug: r\nterms:\n  - match: [kremlin]\n    weight: 6\n"
    plain = Tagger(load_taxonomy_text(base))
    strict = Tagger(load_taxonomy_text(base + "model:\n  bias: -5\n  weights:\n    evidence: 1\n"))
    text = "The Kremlin said so."
    assert plain.tag(None, text) and not strict.tag(None, text)
    loose = Tagger(load_taxonomy_text(base + "model:\n  bias: 5\n  weights:\n    term:kremlin: 1\n"))
    assert [t.slug for t in loose.tag(None, text)] == ["r"]
    assert loose.tag(None, "Nothing relevant here.") == []


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("model:\n  bias: 1\n  weights:\n    evidnce: 1\n", 6, "unknown model feature 'evidnce'"),
        ("model:\n  weights:\n    evidence: 1\n", 4, "model needs 'bias' and 'weights'"),
        ("model:\n  bias: 1\n  weights:\n    evidence: strong\n", 6, "weight of 'evidence' must be a number"),
        ("model:\n  bias: [1]\n  weights:\n    evidence: 1\n", 4, "model bias must be a single value"),
        ("model:\n  bias: 1\n  weights: [evidence]\n", 5, "expected a mapping"),
    ],
)
def test_combiner_errors_name_the_line(extra: str, line: int, message: str) -> None:
    """A malformed model block (wrong keys or types) is an error."""
    with pytest.raises(TaxonomyError, match=rf"^t\.yaml:{line}: .*{message}"):
        load_taxonomy_text("slug: r\nterms: [kremlin]\n" + extra, filename="t.yaml")


@pytest.mark.parametrize(
    ("feature", "why"),
    [
        ("other:nope", "model feature 'other:nope' names no topic of this taxonomy"),
        ("term:beijing", "model feature 'term:beijing' names no term label of topic 'r'"),
        ("loose:beijing", "model feature 'loose:beijing' names no term label of topic 'r'"),
    ],
)
def test_a_model_that_no_longer_fits_is_set_aside_with_a_warning(
    feature: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A model naming a topic or term the taxonomy does not have (a copy kept in part, a term removed)
    does not make the taxonomy unusable: the topic falls back to the plain score, with a warning that
    names the line of the feature."""
    base = "slug: r\nterms:\n  - match: [kremlin]\n    weight: 6\n"
    model = f"model:\n  about: fitted\n  bias: -9\n  weights:\n    evidence: 1\n    {feature}: 0.5\n    other:gone: 1\n"
    with caplog.at_level("WARNING", logger="newswire.processors.taxonomy"):
        taxonomy = load_taxonomy_text(base + model, filename="t.yaml")
    assert taxonomy.topics[0].model is None
    (warning,) = taxonomy.warnings
    assert warning.startswith(f"t.yaml:10: {why} (and 1 more such features); topic 'r' falls back to the plain score r/(r+6)")
    assert "eval/train_combiner.py --write" in warning and "delete its 'model:' block" in warning
    # a renamed term is fixed with one line of YAML, which the warning gives
    assert ("give that term `label: beijing`" in warning) == feature.endswith(":beijing")
    assert "\n" not in warning
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [warning]
    plain = load_taxonomy_text(base)
    assert taxonomy.version.split("-")[-1] == plain.version.split("-")[-1]  # the same content as without it
    text = "The Kremlin said so."
    assert Tagger(taxonomy).tag(None, text) == Tagger(plain).tag(None, text)  # tags as the plain score does
    # the hint names the label as it is, apostrophes included
    odd = load_taxonomy_text(base + model.replace(feature, "term:people's army"), filename="t.yaml")
    assert "give that term `label: people's army`" in odd.warnings[0]


def test_a_model_whose_features_fit_is_kept_without_warning() -> None:
    taxonomy = load_taxonomy_text(
        "topics:\n  - slug: r\n    terms: [kremlin]\n    model:\n      bias: 1\n      weights:\n"
        "        term:kremlin: 1\n        other:s: 1\n  - slug: s\n    terms: [beijing]\n"
    )
    assert taxonomy.topics[0].model is not None and taxonomy.warnings == ()


def test_the_shipped_china_file_alone_loads_without_its_model() -> None:
    """`taxonomy copy`, then one file checked alone: China's model reads the other topics."""
    from importlib import resources

    text = resources.files("newswire").joinpath("taxonomy", "china.yaml").read_text(encoding="utf-8")
    if "other:afghanistan:" not in text:  # the shipped model reads afghanistan; make sure this one does
        text = text.replace("\n  weights:\n", "\n  weights:\n    other:afghanistan: 0.1\n", 1)
    others = [n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith("other:")]
    taxonomy = load_taxonomy_text(text, filename="china.yaml")
    assert taxonomy.slugs == ["china"] and others
    assert taxonomy.topics[0].model is None
    (warning,) = taxonomy.warnings
    assert warning.startswith(f"china.yaml:{others[0]}: model feature 'other:")


def test_bow_tokens_are_words_and_cjk_bigrams() -> None:
    from newswire.processors.tagging import bow_tokens

    assert bow_tokens("Trade War", "China's exports, 2020: up 5%.") == {"trade", "war", "china", "exports"}
    # CJK runs give character bigrams; Latin words beside them stay words.
    assert bow_tokens(None, "阿里发布AI芯片 cloud") == {"阿里", "里发", "发布", "芯片", "cloud"}


def test_a_combiners_context_words_move_the_score_only_where_they_occur() -> None:
    base = "slug: r\nterms:\n  - match: [kremlin]\n    weight: 6\n"
    model = "model:\n  bias: 1\n  weights:\n    evidence: 0\n    bow:tennis: -10\n"
    tagger = Tagger(load_taxonomy_text(base + model))
    assert slugs(tagger.tag(None, "The Kremlin said so."))
    assert not tagger.tag(None, "The Kremlin said so at the tennis final.")
    # Context words alone never tag: no match, no tag.
    assert (
        Tagger(load_taxonomy_text(base + "model:\n  bias: 5\n  weights:\n    bow:said: 3\n")).tag(
            None, "Nothing said here."
        )
        == []
    )


def test_bow_feature_must_be_one_lower_case_word() -> None:
    with pytest.raises(TaxonomyError, match=r"^t\.yaml:6: .*one lower-case word"):
        load_taxonomy_text(
            "slug: r\nterms: [kremlin]\nmodel:\n  bias: 1\n  weights:\n    bow:Two Words: 1\n",
            filename="t.yaml",
        )


def test_span_cover_lookup_agrees_with_checking_every_span() -> None:
    # Exclude phrases and datelines can overlap and nest; the bisect lookup must answer exactly as the
    # plain "is there a span holding [start, stop)" does.
    rng = random.Random(8)
    for _ in range(300):
        spans = [(s, s + rng.randint(1, 30)) for s in (rng.randint(0, 200) for _ in range(rng.randint(1, 12)))]
        starts, reach = _reach(spans)
        for _ in range(40):
            a = rng.randint(0, 240)
            b = a + rng.randint(1, 20)
            assert _covers(starts, reach, a, b) == any(s <= a and b <= e for s, e in spans), (spans, a, b)


def test_a_form_may_repeat_after_a_term_that_only_sometimes_counts_it() -> None:
    # the pattern of the shipped civil-military topic: 'army' with one cue, then 'army' with another
    topic = load_taxonomy_text(
        "slug: a\nterms:\n  - match: [army]\n    requires: [flood]\n  - match: [army]\n    label: army2\n"
        "    requires: [coup]\n  - match: [army]\n    label: army3\n"
    ).topics[0]
    assert [t.label for t in topic.terms] == ["army", "army2", "army3"]


def test_the_shipped_taxonomy_loads_without_a_warning() -> None:
    # a shipped model that no longer fits its terms would quietly fall back to the plain score
    assert load_taxonomy().warnings == ()


def test_the_libyaml_path_reads_the_shipped_taxonomy_as_the_careful_one_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from newswire.processors import taxonomy as loader

    fast = load_taxonomy()
    monkeypatch.setattr(loader, "_CLoader", None)
    careful = load_taxonomy()
    assert fast == careful  # terms, weights, models and every file:line source
    assert [t.source for t in fast.topics] == [t.source for t in careful.topics]


_LAUGHS = "slug: a\nterms: &t0 [x, y, z, w, v, u, s, r, q, p]\n" + "".join(
    f"k{i}: &t{i} [{', '.join([f'*t{i - 1}'] * 10)}]\n" for i in range(1, 9)
)  # 10**8 values once expanded, in 10 lines


@pytest.mark.parametrize("careful", [False, True], ids=["libyaml", "python"])
@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        # an alias inside its own anchor: a walk of the expanded tree would never end
        ("slug: a\nterms: &t [x, *t]\n", 2, "an alias inside the value its anchor names"),
        ("slug: a\nterms:\n  - &t\n    match: [x]\n    requires: [*t]\n", 3, "an alias inside the value"),
        (_LAUGHS, 1, "aliases expand to more than 2,000,000 values"),
    ],
)
def test_aliases_that_never_end_or_explode_are_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, careful: bool, text: str, line: int, words: str
) -> None:
    from newswire.processors import taxonomy as loader

    if careful:
        monkeypatch.setattr(loader, "_CLoader", None)
    path = write(tmp_path, "topic.yaml", text)
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert str(info.value).startswith(f"{path}:{line}: YAML error: "), str(info.value)
    assert words in str(info.value)


def test_an_alias_can_share_one_list_between_terms(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "topic.yaml",
        "slug: a\nterms:\n  - match: [kabul]\n    unless: &sports [cricket, football]\n"
        "  - match: [taliban]\n    unless: *sports\n",
    )
    topic = load_taxonomy(path).topics[0]
    assert [t.unless for t in topic.terms] == [("cricket", "football"), ("cricket", "football")]


def test_forms_a_stem_does_not_swallow_still_load() -> None:
    """A longer phrase wins over the stem's word; a form before the stem's term counts first; a stem
    under a condition leaves the later form its chances."""
    text = (
        "slug: a\nterms:\n  - match: [ukraine]\n    weight: 3\n  - match: [ukrain*]\n"
        "  - match: [ukraine war, ukrain-russia]\n    weight: 2\n"
        "  - match: [kyi*]\n    requires: [city]\n  - match: [kyiv]\n"
    )
    assert len(load_taxonomy_text(text).topics[0].terms) == 5


def test_hidden_files_in_a_taxonomy_directory_are_not_topics(tmp_path: Path) -> None:
    """macOS leaves "._china.yaml" (binary) beside every file it copies to a foreign disk; editors leave
    hidden copies too. Each was read as a topic file: a "not UTF-8" or duplicate-topic error."""
    write(tmp_path, "china.yaml", "slug: china\nterms: [beijing]\n")
    (tmp_path / "._china.yaml").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    write(tmp_path, ".china.yaml", "slug: china\nterms: [peking]\n")
    assert [t.slug for t in load_taxonomy(tmp_path).topics] == ["china"]
