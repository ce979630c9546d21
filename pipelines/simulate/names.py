"""Name pools for simulated people: Latin-script, Chinese and Japanese.

Invented combinations of common given names and surnames; any resemblance to a real person is
chance. Chinese and Japanese entries carry both the native script and a romanisation, because
firms store either depending on how the contact introduced themselves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LATIN_GIVEN = (
    "Maria",
    "James",
    "Sofia",
    "Daniel",
    "Olivia",
    "Lucas",
    "Emma",
    "Noah",
    "Isabella",
    "Ethan",
    "Amelia",
    "Mateo",
    "Charlotte",
    "Liam",
    "Chloe",
    "Gabriel",
    "Hannah",
    "Samuel",
    "Zoe",
    "Oliver",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Elena",
    "Marco",
    "Claire",
    "Henrik",
    "Ingrid",
    "Rafael",
    "Lucia",
    "Thomas",
    "Grace",
    "Patrick",
    "Naomi",
    "Victor",
    "Aisha",
    "Felix",
    "Julia",
    "Andre",
    "Rebecca",
    "Stefan",
    "Camille",
    "Diego",
    "Nadia",
    "Oscar",
    "Leah",
    "Tobias",
    "Emily",
    "Adrian",
)
LATIN_FAMILY = (
    "Gonzalez",
    "Smith",
    "Rossi",
    "Muller",
    "Dubois",
    "Johnson",
    "Silva",
    "Novak",
    "Kowalski",
    "Brown",
    "Garcia",
    "Martin",
    "Bianchi",
    "Schneider",
    "Williams",
    "Fernandez",
    "Andersson",
    "O'Neill",
    "Patel",
    "Khan",
    "Haddad",
    "Costa",
    "Petrov",
    "Jensen",
    "Moreau",
    "Taylor",
    "Romero",
    "Fischer",
    "Walsh",
    "Nguyen",
    "Okafor",
    "Mendes",
    "Larsen",
    "Weber",
    "Campbell",
    "Ricci",
    "Herrera",
    "Lindqvist",
    "Murphy",
    "Varga",
    "Delgado",
    "Sato-Reed",
    "Hughes",
    "Bauer",
    "Moretti",
    "Cohen",
    "Ward",
    "Reyes",
)

# (native, romanised)
CHINESE_FAMILY = (
    ("王", "Wang"),
    ("李", "Li"),
    ("张", "Zhang"),
    ("刘", "Liu"),
    ("陈", "Chen"),
    ("杨", "Yang"),
    ("黄", "Huang"),
    ("赵", "Zhao"),
    ("吴", "Wu"),
    ("周", "Zhou"),
    ("徐", "Xu"),
    ("孙", "Sun"),
    ("马", "Ma"),
    ("朱", "Zhu"),
    ("胡", "Hu"),
    ("郭", "Guo"),
    ("何", "He"),
    ("林", "Lin"),
    ("罗", "Luo"),
    ("梁", "Liang"),
    ("郑", "Zheng"),
    ("谢", "Xie"),
    ("宋", "Song"),
    ("唐", "Tang"),
)
CHINESE_GIVEN = (
    ("伟", "Wei"),
    ("芳", "Fang"),
    ("娜", "Na"),
    ("敏", "Min"),
    ("静", "Jing"),
    ("丽", "Li"),
    ("强", "Qiang"),
    ("磊", "Lei"),
    ("军", "Jun"),
    ("洋", "Yang"),
    ("勇", "Yong"),
    ("艳", "Yan"),
    ("杰", "Jie"),
    ("娟", "Juan"),
    ("涛", "Tao"),
    ("明", "Ming"),
    ("超", "Chao"),
    ("秀英", "Xiuying"),
    ("志强", "Zhiqiang"),
    ("晓明", "Xiaoming"),
    ("嘉欣", "Jiaxin"),
    ("子涵", "Zihan"),
    ("浩然", "Haoran"),
    ("雨桐", "Yutong"),
    ("家豪", "Jiahao"),
    ("美玲", "Meiling"),
    ("俊杰", "Junjie"),
    ("思远", "Siyuan"),
)
# Hong Kong and Singapore contacts often go by an English given name with a Cantonese/Hokkien surname.
HK_FAMILY = ("Chan", "Wong", "Leung", "Cheung", "Lau", "Ng", "Tan", "Lim", "Ho", "Yeung", "Tsang", "Koh")

JAPANESE_FAMILY = (
    ("佐藤", "Sato"),
    ("鈴木", "Suzuki"),
    ("高橋", "Takahashi"),
    ("田中", "Tanaka"),
    ("伊藤", "Ito"),
    ("渡辺", "Watanabe"),
    ("山本", "Yamamoto"),
    ("中村", "Nakamura"),
    ("小林", "Kobayashi"),
    ("加藤", "Kato"),
    ("吉田", "Yoshida"),
    ("山田", "Yamada"),
    ("佐々木", "Sasaki"),
    ("松本", "Matsumoto"),
    ("井上", "Inoue"),
    ("木村", "Kimura"),
    ("林", "Hayashi"),
    ("清水", "Shimizu"),
    ("森", "Mori"),
)
JAPANESE_GIVEN = (
    ("健", "Ken"),
    ("翔太", "Shota"),
    ("大輔", "Daisuke"),
    ("拓也", "Takuya"),
    ("直樹", "Naoki"),
    ("美咲", "Misaki"),
    ("陽子", "Yoko"),
    ("優子", "Yuko"),
    ("恵", "Megumi"),
    ("さくら", "Sakura"),
    ("浩", "Hiroshi"),
    ("誠", "Makoto"),
    ("亮", "Ryo"),
    ("彩", "Aya"),
    ("麻衣", "Mai"),
    ("花子", "Hanako"),
    ("悠斗", "Yuto"),
    ("葵", "Aoi"),
    ("真由美", "Mayumi"),
    ("隆", "Takashi"),
)


@dataclass(frozen=True, slots=True)
class Name:
    """A person's display name and the short form people use in greetings."""

    display: str
    short: str  # what a colleague or advisor would write after "Hi"
    script: str  # latin, chinese, japanese
    family: str  # for e-mail addresses: always Latin letters
    given: str


def latin(rng: random.Random) -> Name:
    given, family = rng.choice(LATIN_GIVEN), rng.choice(LATIN_FAMILY)
    return Name(f"{given} {family}", given, "latin", family, given)


def chinese(rng: random.Random, *, native: bool) -> Name:
    """A Chinese name; ``native`` writes it in characters (mainland WeChat users mostly do)."""
    (family_cn, family_en), (given_cn, given_en) = rng.choice(CHINESE_FAMILY), rng.choice(CHINESE_GIVEN)
    if native:
        return Name(family_cn + given_cn, family_cn + given_cn, "chinese", family_en, given_en)
    if rng.random() < 0.5:
        # Hong Kong style: English given name, Cantonese surname
        given, family = rng.choice(LATIN_GIVEN), rng.choice(HK_FAMILY)
        return Name(f"{given} {family}", given, "latin", family, given)
    return Name(f"{given_en} {family_en}", given_en, "latin", family_en, given_en)


def japanese(rng: random.Random, *, native: bool) -> Name:
    (family_jp, family_en), (given_jp, given_en) = rng.choice(JAPANESE_FAMILY), rng.choice(JAPANESE_GIVEN)
    if native:
        # Japanese business chat addresses people by family name (the phrase adds さん)
        return Name(f"{family_jp} {given_jp}", family_jp, "japanese", family_en, given_en)
    return Name(f"{given_en} {family_en}", given_en, "latin", family_en, given_en)


def any_name(rng: random.Random) -> Name:
    """A name of any style, for third parties mentioned in messages."""
    roll = rng.random()
    if roll < 0.6:
        return latin(rng)
    if roll < 0.8:
        return chinese(rng, native=rng.random() < 0.5)
    return japanese(rng, native=rng.random() < 0.5)
