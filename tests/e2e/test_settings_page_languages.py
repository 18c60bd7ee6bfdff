"""The settings page in the portal's language: the emulated portal opens it with its ``LANG``
(ru, pl, en; anything else falls back to English), and every form carries the page's language
back, so what a form answers (saved, refused, expired) reads in the same language.

With ``SETTINGS_PAGE_HTML_DIR`` set, the pages rendered here are written there as
``settings-<lang>.html`` (a watch listed, a gateway chosen), ``settings-<lang>-new.html`` (as
first opened: no gateway chosen) and ``settings-<lang>-rules.html`` (watches of every plural
form), to look at, e.g. as a screenshot.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest
import requests

HEADINGS = {
    "ru": [
        "<title>Настройки сервера роботов</title>",
        "<h1>Настройки сервера роботов</h1>",
        "<h2>Календарь портала</h2>",
        "<h2>SMS-шлюз</h2>",
        "<h2>Отслеживание дат</h2>",
        "<h3>Добавить отслеживание</h3>",
        "Часовой пояс (название IANA)",
        "Страна (код ISO; пусто — без праздников)",
        "Часовой пояс и страна портала определяют даты, рабочие дни и праздники",
        "Отслеживаемых дат пока нет.",
        "ID воронки (0 — общая воронка)",
        "Поле с датой",
        "Считать только рабочие дни",
        "<legend>Когда наступает срок сделки</legend>",
        "перевести сделку на стадию",
        "запустить триггер",
        "Гарантия истекает (warranty_expiring)",  # the trigger's own name in the portal's language
        '<button type="submit">Сохранить</button>',
        '<button type="submit">Добавить</button>',
        # the SMS gateways: titles and field labels, marked in the gateway layer
        "Шлюз ещё не выбран: раскройте нужный, отметьте его и заполните настройки.",
        "> HTTP-шлюз</label></summary>",
        "URL отправки <input",
        "Ключ API (api_id) <input",
        "SID аккаунта (Account SID) <input",
        "Имя отправителя (пусто — отправка SMS ECO) <input",
        "Укажите страну в календаре портала: пока она не задана, номера без + не распознаются.",
    ],
    "pl": [
        "<title>Ustawienia serwera robotów</title>",
        "<h1>Ustawienia serwera robotów</h1>",
        "<h2>Kalendarz portalu</h2>",
        "<h2>Bramka SMS</h2>",
        "<h2>Obserwowane daty</h2>",
        "<h3>Dodaj obserwację</h3>",
        "Strefa czasowa (nazwa IANA)",
        "Kraj (kod ISO; puste — bez świąt)",
        "Strefa czasowa i kraj portalu wyznaczają daty, dni robocze i święta",
        "Nie ma jeszcze obserwowanych dat.",
        "ID lejka (0 — lejek ogólny)",
        "Pole z datą",
        "Licz tylko dni robocze",
        "<legend>Gdy nadejdzie termin deala</legend>",
        "przenieś deal do etapu",
        "uruchom wyzwalacz",
        "Gwarancja wygasa (warranty_expiring)",
        '<button type="submit">Zapisz</button>',
        '<button type="submit">Dodaj</button>',
        "Nie wybrano jeszcze bramki: rozwiń właściwą, zaznacz ją i wypełnij jej ustawienia.",
        "> Bramka HTTP</label></summary>",
        "Adres URL wysyłki <input",
        "Klucz API (api_id) <input",
        "SID konta (Account SID) <input",
        "Nazwa nadawcy (puste — wysyłka SMS ECO) <input",
        "Ustaw kraj w kalendarzu portalu: dopóki nie jest ustawiony, numery bez + nie są "
        "rozpoznawane.",
    ],
    "en": [
        "<title>Robot server settings</title>",
        "<h1>Robot server settings</h1>",
        "<h2>Portal calendar</h2>",
        "<h2>SMS gateway</h2>",
        "<h2>Date watches</h2>",
        "<h3>Add a watch</h3>",
        "Time zone (IANA name)",
        "The portal's time zone and country decide dates",
        "No date watches yet.",
        "<legend>When a deal is due</legend>",
        "move the deal to the stage",
        "Warranty is expiring (warranty_expiring)",
        '<button type="submit">Save</button>',
        '<button type="submit">Add</button>',
        "No gateway is chosen yet: open one, select it and fill in its settings.",
        "> HTTP gateway</label></summary>",
        "Send URL <input",
        "API key (api_id) <input",
        "Set the portal calendar's country: numbers without + cannot be read until then.",
    ],
}
ENGLISH = ["Portal calendar", "SMS gateway", "Date watches", ">Save<", "No date watches yet.",
           "HTTP gateway", "Send URL", "Sender name", "API address", "Auth token <input",
           "parameter name", "in the reply", "Callback field"]  # fmt: skip


def set_language(stack, lang: str) -> None:
    """The portal's language: what it sends as ``LANG`` when it opens the app's page."""
    with stack.world.lock:
        stack.portal.language = lang


def text_of(body: str) -> str:
    return html.unescape(body)


def hidden(body: str, name: str) -> list[str]:
    return [html.unescape(v) for v in re.findall(rf'name="{name}" value="([^"]*)"', body)]


def send(stack, token: str, lang: str, action: str, **fields: str) -> requests.Response:
    """A form of the page as the browser sends it back: the hidden fields and the inputs."""
    data = {"member_id": stack.member_id, "form_token": token, "lang": lang, "action": action}
    return requests.post(f"{stack.app_url}/settings", data={**data, **fields}, timeout=10)


def keep(name: str, body: str) -> None:
    """Write a rendered page out when SETTINGS_PAGE_HTML_DIR is set."""
    folder = os.environ.get("SETTINGS_PAGE_HTML_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"settings-{name}.html").write_text(body, encoding="utf-8")


@pytest.mark.parametrize(("portal_lang", "lang"), [("ru", "ru"), ("pl", "pl"), ("en", "en"),
                                                    ("de", "en")])  # fmt: skip
def test_the_page_opens_in_the_portals_language(stack, portal_lang: str, lang: str) -> None:
    stack.install()
    set_language(stack, portal_lang)
    page = stack.open_settings()
    assert page["status"] == 200, page["body"][:500]
    body = page["body"]
    assert f'<html lang="{lang}">' in body
    text = text_of(body)
    missing = [expected for expected in HEADINGS[lang] if expected not in text]
    assert not missing, missing
    if lang != "en":
        assert not [english for english in ENGLISH if english in text]
    forms = body.count("<form ")
    assert forms >= 3 and hidden(body, "lang") == [lang] * forms  # every form says the language


@pytest.mark.parametrize(
    ("lang", "refusal"),
    [
        ("ru", "Изменять настройки может только администратор портала."),
        ("pl", "Tylko administrator portalu może zmieniać ustawienia."),
        ("de", "Only a portal administrator can change the settings."),
    ],
)
def test_an_employee_is_refused_in_the_portals_language(stack, lang: str, refusal: str) -> None:
    stack.install()
    set_language(stack, lang)
    page = stack.open_settings(user_id=2)  # a seeded employee, not an admin
    assert page["status"] == 403
    assert refusal in text_of(page["body"])
    assert f'<html lang="{"en" if lang == "de" else lang}">' in page["body"]
    assert "form_token" not in page["body"]


ANSWERS = {
    "ru": {
        "no_zone": "Не сохранено: укажите часовой пояс (название IANA, например Europe/Warsaw).",
        "calendar": "Сохранено: часовой пояс Europe/Warsaw, праздники страны PL.",
        "no_holidays": "Сохранено: часовой пояс Europe/Warsaw, без праздников.",
        "heading": "<h2>Календарь портала</h2>",
        "not_a_number": "Не добавлено: число дней должно быть целым числом.",
        "funnel_not_a_number": "Не добавлено: ID воронки должен быть целым числом.",
        "watching": "Отслеживание добавлено: воронка 0, за 3 рабочих дня до даты из поля "
        "UF_CRM_WARRANTY_END — перевести на стадию LOSE.",
        "table": [
            "<th>Название</th>",
            "<th>Воронка</th>",
            "<th>Поле</th>",
            "<th>Правило</th>",
            "<th>Действие</th>",
            "<th>Стадия или триггер</th>",
            "<th>Последняя проверка</th>",
            "<td>за 3 рабочих дня до даты</td>",
            "<td>перевести на стадию</td>",
            "<td>ещё не было</td>",
            '<button type="submit" class="secondary">Удалить</button>',
        ],
        "removed": "Отслеживание {id} удалено.",
        "id_not_a_number": "Не удалено: ID отслеживания должен быть целым числом.",
        # one of each plural form: 1 and 21 (one), 3 (few), 5 and 11 (many)
        "rules": {
            ("1", "1"): "за 1 рабочий день до даты",
            ("21", ""): "за 21 день до даты",
            ("-5", "1"): "через 5 рабочих дней после даты",
            ("-11", ""): "через 11 дней после даты",
            ("0", ""): "в день даты",
        },
        "gone": "Отслеживание {id} не найдено (возможно, оно уже удалено).",
        "sms": "Сохранено: SMS отправляются через SMS.ru.",
        "sms_refused": "Не сохранено: smsru: missing settings: api_id.",
        "sms_page": [
            "URL для отчётов о доставке:",
            "Ключ API (api_id) <input",
            "Имя отправителя (from) <input",
            "Тестовый режим (1 — не отправлять на самом деле) <input",
            'placeholder="задан; пусто — без изменений"',
            "Номера без + считаются номерами страны PL (страна из календаря портала).",
        ],
        "no_gateway": "Выберите шлюз.",
        "expired": "Срок действия формы истёк. Откройте страницу заново.",
        "unknown": "Неизвестное действие.",
    },
    "pl": {
        "no_zone": "Nie zapisano: podaj strefę czasową (nazwę IANA, np. Europe/Warsaw).",
        "calendar": "Zapisano: strefa czasowa Europe/Warsaw, święta kraju PL.",
        "no_holidays": "Zapisano: strefa czasowa Europe/Warsaw, bez świąt.",
        "heading": "<h2>Kalendarz portalu</h2>",
        "not_a_number": "Nie dodano: liczba dni musi być liczbą całkowitą.",
        "funnel_not_a_number": "Nie dodano: ID lejka musi być liczbą całkowitą.",
        "watching": "Dodano obserwację: lejek 0, 3 dni robocze przed datą z pola "
        "UF_CRM_WARRANTY_END — przenieś do etapu LOSE.",
        "table": [
            "<th>Nazwa</th>",
            "<th>Lejek</th>",
            "<th>Pole</th>",
            "<th>Reguła</th>",
            "<th>Działanie</th>",
            "<th>Etap lub wyzwalacz</th>",
            "<th>Ostatnie sprawdzenie</th>",
            "<td>3 dni robocze przed datą</td>",
            "<td>przenieś do etapu</td>",
            "<td>jeszcze nie było</td>",
            '<button type="submit" class="secondary">Usuń</button>',
        ],
        "removed": "Usunięto obserwację {id}.",
        "id_not_a_number": "Nie usunięto: ID obserwacji musi być liczbą całkowitą.",
        # one of each plural form: 1 (one), 3 (few), 5, 11 and 21 (many)
        "rules": {
            ("1", "1"): "1 dzień roboczy przed datą",
            ("21", ""): "21 dni przed datą",
            ("-5", "1"): "5 dni roboczych po dacie",
            ("-11", ""): "11 dni po dacie",
            ("0", ""): "w dniu daty",
        },
        "gone": "Nie znaleziono obserwacji {id} (może została już usunięta).",
        "sms": "Zapisano: SMS-y są wysyłane przez SMS.ru.",
        "sms_refused": "Nie zapisano: smsru: missing settings: api_id.",
        "sms_page": [
            "Adres URL raportów doręczenia:",
            "Klucz API (api_id) <input",
            "Nazwa nadawcy (from) <input",
            "Tryb testowy (1 — bez faktycznej wysyłki) <input",
            'placeholder="ustawione; puste — bez zmian"',
            "Numery bez + są traktowane jako numery z kraju PL (kraj z kalendarza portalu).",
        ],
        "no_gateway": "Wybierz bramkę.",
        "expired": "Formularz wygasł. Otwórz stronę ponownie.",
        "unknown": "Nieznana akcja.",
    },
}


@pytest.mark.parametrize("lang", ["ru", "pl"])
def test_the_forms_answer_in_the_pages_language(stack, lang: str) -> None:
    said = ANSWERS[lang]
    stack.install()
    set_language(stack, lang)
    page = stack.open_settings()
    assert page["status"] == 200
    keep(f"{lang}-new", page["body"])
    [token] = set(hidden(page["body"], "form_token"))

    def answered(response: requests.Response, status: int, *expected: str) -> str:
        text = text_of(response.text)
        assert response.status_code == status, text[-1500:]
        assert f'<html lang="{lang}">' in response.text
        missing = [e for e in expected if e not in text]
        assert not missing, (missing, text[-2500:])
        return text

    refused = send(stack, token, lang, "calendar", timezone=" ", country="PL")
    answered(refused, 400, said["no_zone"], said["heading"], '<p class="note err">')
    assert hidden(refused.text, "lang") == [lang] * refused.text.count("<form ")
    assert stack.services.store.get_setting(stack.member_id, "calendar") is None

    answered(send(stack, token, lang, "calendar", timezone="Europe/Warsaw", country=""), 200,
             said["no_holidays"])  # fmt: skip
    answered(send(stack, token, lang, "calendar", timezone="Europe/Warsaw", country="pl"), 200,
             said["calendar"], '<p class="note ok">')  # fmt: skip

    watch = {"name": "Гарантия" if lang == "ru" else "Gwarancja", "category_id": "0",
             "field": "UF_CRM_WARRANTY_END", "within_days": "3", "working_days": "1",
             "then": "move", "stage": "LOSE"}  # fmt: skip
    answered(send(stack, token, lang, "add_watch", **{**watch, "within_days": "three"}), 400,
             said["not_a_number"])  # fmt: skip
    answered(send(stack, token, lang, "add_watch", **{**watch, "category_id": "zero"}), 400,
             said["funnel_not_a_number"])  # fmt: skip
    added = answered(send(stack, token, lang, "add_watch", **watch), 200,
                     said["watching"], *said["table"])  # fmt: skip
    [watch_id] = re.findall(r'<tr id="watch-(\d+)">', added)

    answered(send(stack, token, lang, "sms"), 400, said["no_gateway"])
    answered(send(stack, token, lang, "sms", gateway="smsru"), 400, said["sms_refused"])
    saved = answered(send(stack, token, lang, "sms", gateway="smsru", **{"smsru.api_id": "k"}),
                     200, said["sms"], *said["sms_page"])  # fmt: skip
    keep(lang, saved)  # the fullest page: a watch listed, a gateway chosen

    answered(send(stack, token, lang, "remove_watch", watch_id=watch_id), 200,
             said["removed"].format(id=watch_id))  # fmt: skip
    answered(send(stack, token, lang, "remove_watch", watch_id=watch_id), 400,
             said["gone"].format(id=watch_id))  # fmt: skip
    answered(send(stack, token, lang, "remove_watch", watch_id="one"), 400,
             said["id_not_a_number"])  # fmt: skip

    for (days, working), rule in said["rules"].items():
        listed = answered(send(stack, token, lang, "add_watch", **{**watch, "within_days": days,
                                                                  "working_days": working}),
                          200)  # fmt: skip
        assert f"<td>UF_CRM_WARRANTY_END</td><td>{rule}</td>" in listed, (days, working)
    keep(f"{lang}-rules", listed)
    answered(send(stack, token, lang, "drop_everything"), 400, said["unknown"])
    expires, _, signature = token.partition(".")
    answered(send(stack, f"{int(expires) + 60}.{signature}", lang, "calendar"), 403,
             said["expired"])  # fmt: skip
