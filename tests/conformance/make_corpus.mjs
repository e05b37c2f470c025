// make_corpus.mjs - writes corpus.jsonl, the text the tokenizer conformance suite encodes
//
// usage: node tests/conformance/make_corpus.mjs [--out FILE] [--check]
//
// Every string is written here or generated from character ranges and word
// lists typed into this file, with a fixed-seed generator: the same script
// writes the same bytes. One JSON string per line (JSON.stringify, so control
// characters and NUL are \u escapes). --check regenerates in memory and exits
// 1 if FILE differs, for CI or review. A summary of the categories and their
// line ranges goes to stderr; README.md describes them.
//
// Characters come only from blocks assigned by Unicode 15.0 (libutf8proc 2.8,
// which rocmforge links, knows no later version), and never a lone surrogate
// (UTF-8 cannot carry one, so no tokenizer sees it).

import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));

// ---- deterministic randomness: Marsaglia's xorshift32 ----

let state = 0x2545f491;
function next32() {
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state;
}
const below = (n) => next32() % n;
const pick = (list) => list[below(list.length)];
const chance = (p) => next32() / 4294967296 < p;

// ---- the corpus, built category by category ----

const corpus = [];
const seen = new Set();
const categories = [];
let category = null;

function begin(name) {
  category = { name, first: corpus.length + 1, count: 0 };
  categories.push(category);
}
function add(s) {
  if (typeof s !== "string") throw new Error(`not a string: ${s}`);
  if (/[\uD800-\uDFFF]/u.test(s)) throw new Error(`lone surrogate in ${JSON.stringify(s)}`);
  if (seen.has(s)) return;
  seen.add(s);
  corpus.push(s);
  category.count++;
}
const cp = (...points) => String.fromCodePoint(...points);
function range(lo, hi) {
  const out = [];
  for (let c = lo; c <= hi; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const ch = cp(c);
    if (/\p{Cn}|\p{Cs}/u.test(ch)) continue;
    out.push(ch);
  }
  return out;
}
const randomWord = (chars, min, max) => {
  let w = "";
  const n = min + below(max - min + 1);
  for (let i = 0; i < n; i++) w += pick(chars);
  return w;
};
const upperFirst = (s) => s.charAt(0).toUpperCase() + s.slice(1);

// ---- 1. English sentences and their case and spacing variants ----

const sentences = [
  "Hello world",
  "Hello, world!",
  "The quick brown fox jumps over the lazy dog.",
  "Pack my box with five dozen liquor jugs.",
  "How vexingly quick daft zebras jump!",
  "She sells sea shells by the sea shore.",
  "A batch job runner reads prompts from a database and writes results back.",
  "Tokenizers split text into pieces; models only ever see the pieces.",
  "Is this the real life? Is this just fantasy?",
  "Wait... what?! No way!!!",
  "e-mail, co-operate, re-enter, well-known, state-of-the-art",
  "He said \"yes\", then 'no', then (maybe) [perhaps] {never}.",
  "Use the -v flag, or --verbose, to see more output.",
  "The price is $19.99 (or €18,50 / £16.00 / ¥2,980).",
  "Send mail to someone@example.com or visit https://example.org/path?q=1&r=2#top.",
  "C:\\Users\\admin\\Documents\\file.txt",
  "/usr/local/bin/rocmforge --help",
  "It was 3:45 p.m. on 2024-03-17 when the run finished.",
  "Mr. Smith, Mrs. Jones and Dr. Who met at 10 a.m.",
  "U.S.A., U.K., e.g., i.e., etc., vs.",
  "ALL CAPS SENTENCE WITH SHOUTING",
  "mIxEd CaSe SeNtEnCe",
  "camelCaseIdentifier snake_case_identifier kebab-case-identifier SCREAMING_SNAKE",
  "The year 1999 had 365 days; 2000 had 366.",
  "Roses are red,\nviolets are blue,\ntokenizers split\nand so do you.",
  "First line\r\nSecond line\r\nThird line",
  "Column one\tColumn two\tColumn three",
  "  indented with two spaces",
  "trailing spaces   ",
  "multiple     spaces     between     words",
  "Questions? Answers! Statements. Exclamations!?",
  "#hashtag @mention $cashtag %percent ^caret &ampersand *star",
  "~tilde `backtick` |pipe| \\backslash/ <angle> =equals+ _underscore-",
  "It's a dog's life, isn't it? They're sure we'll win; you'd agree I'm right.",
  "The Tokenizer's job: bytes in, ids out.",
  "1st 2nd 3rd 4th 11th 12th 13th 21st 22nd 101st",
  "ok OK Ok oK",
  "a b c d e f g h i j k l m n o p q r s t u v w x y z",
  "A B C D E F G H I J K L M N O P Q R S T U V W X Y Z",
  "supercalifragilisticexpialidocious",
  "Pneumonoultramicroscopicsilicovolcanoconiosis",
  "antidisestablishmentarianism",
  "The end.",
  "...",
  "?!",
  "—em dash— –en dash– -hyphen- ‒figure dash‒",
  "“Curly quotes” and ‘single curly quotes’ and «guillemets» and „low quotes“",
  "Ellipsis… bullet • middle dot · section § pilcrow ¶ dagger † double dagger ‡",
  "Trademark™ registered® copyright© degree° plus-minus± micro µ",
  "½ ¼ ¾ ⅓ ⅔ ⅛ fractions and ² ³ ¹ superscripts",
];
begin("english sentences and variants");
for (const s of sentences) {
  add(s);
  add(s.toLowerCase());
  add(s.toUpperCase());
  add(" " + s);
  add(s + "\n");
}

// ---- 2. contractions in every case ----

begin("contractions");
const suffixes = ["s", "t", "re", "ve", "m", "ll", "d"];
const caseForms = (x) => {
  const forms = new Set([x, x.toUpperCase()]);
  if (x.length === 2) {
    forms.add(x[0].toUpperCase() + x[1]);
    forms.add(x[0] + x[1].toUpperCase());
  }
  return [...forms];
};
for (const suffix of suffixes) {
  for (const form of caseForms(suffix)) {
    add(`'${form}`);
    add(`it'${form}`);
    add(`IT'${form}`);
    add(`they'${form} here`);
    add(` '${form} `);
    add(`x'${form}'${form}`);
  }
}
for (const s of [
  "don't", "DON'T", "Don't", "can't", "won't", "shan't", "y'all", "Y'ALL", "ma'am",
  "rock 'n' roll", "O'Neil", "o'clock", "'tis", "'twas", "the '90s", "'s'", "''s", "'''",
  "'", "''", "it’s", "IT’S", "they’re", "we’ll", "I’m", "you’d", "’s", "dog‘s",
  "it''s", "it ' s", "it 's", "it' s", "'S", "'LL", "'Ll", "'lL", "'RE", "'Re", "'VE",
  "I'M", "I'm", "i'm", "HE'D", "she'D", "We'Ve", "you'RE", "John's", "JOHN'S", "james'",
  "l'homme", "aujourd'hui", "dell'arte", "'sup", "'s's's's", "s's", "'ss", "'st", "'dd",
  // letters that case-fold to s, t, k under Unicode rules (long s, ligatures, Kelvin sign)
  "it'\u017f", "'\u017f", "'\ufb06", "'\u212a", "we'\u017f\u017f", "'\u0130", "'\u0131",
]) add(s);

// ---- 3. numbers: digit runs of every length, numbers mixed with letters ----

begin("numbers and digit runs");
for (let len = 1; len <= 20; len++) {
  for (let k = 0; k < 3; k++) {
    let digits = "";
    for (let i = 0; i < len; i++) digits += String(below(10));
    add(digits);
    if (k === 0) {
      add(" " + digits);
      add("x" + digits);
      add(digits + "x");
      add("abc" + digits + "def");
      add("7".repeat(len));
      add("0".repeat(len));
    }
  }
}
for (const s of [
  "3.14159", "2.71828", "-42", "+17", "1e10", "6.022e23", "1E-9", "0x1F", "0xDEADBEEF", "0b1011",
  "0o777", "1,000", "1,000,000", "1.000.000,50", "1 000 000", "12'345'678", "99.9%", "50 %",
  "$1,234.56", "€5", "100°C", "-40°F", "3/4", "22/7", "1:2:3", "10:30", "23:59:59.999",
  "2024-03-17", "17.03.2024", "03/17/2024", "2024-03-17T10:30:00Z", "+1 (555) 123-4567",
  "192.168.0.1", "::1", "fe80::1ff:fe23:4567:890a", "v1.2.3", "v10.0.0-rc.1", "python3.11",
  "x86_64", "aarch64", "gfx90a", "sm_90", "H100", "A100-80GB", "1080p", "4K", "24fps",
  "1st", "2nd", "3rd", "MMXXIV", "Ⅻ", "ⅻ", "Ⅻ12", "COVID-19", "B2B", "P2P", "3D", "a1b2c3d4e5",
  "123abc456", "abc123", "123 456 789", "1-2-3-4", "1.2.3.4.5.6.7.8.9.10", "007", "000123",
  "١٢٣٤٥٦٧٨٩٠", "۱۲۳۴۵۶۷۸۹۰", "०१२३४५६७८९", "১২৩", "௧௨௩", "๑๒๓", "１２３４５", "①②③", "⑴⑵⑶", "²³¹",
  "𝟙𝟚𝟛", "𝟘𝟙", "Ⅷ", "〇一二三", "12345678901234567890123", "9".repeat(25),
]) add(s);

// ---- 4. whitespace: ASCII runs, line endings, Unicode spaces ----

begin("whitespace");
for (const s of [
  "", " ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r", "\r\n", "\r\n\r\n",
  "\n\r", " \n", "\n ", " \n ", "\t\n", "\n\t", " \t \n ", "a b", "a  b", "a   b", "a\tb",
  "a\nb", "a\r\nb", "a\rb", "a\n\nb", "a \nb", "a\n b", "a \n b", " a", "  a", "a ", "a  ",
  " a ", "\ta", "a\t", "\na", "a\n", "\n\na\n\n", "  leading", "trailing  ", "\tindented tab",
  "line\n  indented\n    more\n", "a\u000bb", "a\u000cb", "\u000b", "\u000c", "x \t\n\r y",
  "end\n", "end\r\n", "end \n", "end\n\n", "  \n  \n  ", "\n \n \n", "a \n\n b", "hello\n\nworld",
]) add(s);
const asciiWs = [" ", "\t", "\n", "\r\n", "\r", "a", "b."];
for (let i = 0; i < 150; i++) {
  let s = "";
  const n = 1 + below(6);
  for (let k = 0; k < n; k++) s += pick(asciiWs);
  add(s);
}
const unicodeSpaces = [
  0x00a0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008,
  0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff, 0x0085, 0x200b, 0x180e,
  0x200c, 0x200d, 0x2060,
];
for (const u of unicodeSpaces) {
  const w = cp(u);
  for (const s of [w, w + w, `a${w}b`, `${w}a`, `a${w}`, `a ${w} b`, `${w}\n`, `1${w}000`, `word${w}${w}word`])
    add(s);
}

// ---- 5. scripts: phrases, diacritics in NFC and NFD, random words ----

begin("scripts");
const phrases = [
  // Latin with diacritics
  "café", "naïve", "façade", "crème brûlée", "Größe", "Übermäßig", "Straße", "STRASSE",
  "¿Dónde está la estación?", "¡Olé!", "São Paulo", "coração", "Łódź", "Zażółć gęślą jaźń",
  "Příliš žluťoučký kůň úpěl ďábelské ódy", "Tiếng Việt có dấu", "Nguyễn", "Ağaç İstanbul ıslık",
  "Þórður", "Ærøskøbing", "Åland", "Şcoală, ţară", "Ångström", "Ñandú", "Müller-Lüdenscheidt",
  "Crêpe à la française, s'il vous plaît", "Dvořák", "Škoda", "Œuvre", "Ĳssel", "ǅungla",
  // Cyrillic
  "Привет, мир!", "Съешь же ещё этих мягких французских булок, да выпей чаю.", "Ёлка", "ЁЖИК",
  "Ґанок, їжак, є", "Љубав и њега", "Здравствуйте", "русский язык", "БОЛЬШИЕ БУКВЫ",
  // Greek
  "Καλημέρα κόσμε", "Ελληνικά", "ΑΒΓΔ αβγδ", "λόγος", "ἀρχὴ", "Ὀδυσσεύς", "ΣΊΣΥΦΟΣ σίσυφος",
  // Arabic, Persian, Urdu
  "مرحبا بالعالم", "السلام عليكم", "مَرْحَبًا", "اللغة العربية", "سلام دنیا ۱۲۳", "یہ اردو ہے",
  "العدد ١٢٣ والعدد 456", "\u200fمرحبا\u200e hello",
  // Hebrew
  "שלום עולם", "שָׁלוֹם", "עברית", "hello שלום world",
  // Indic
  "नमस्ते दुनिया", "हिन्दी", "क्षत्रिय", "ज़िंदगी", "संस्कृतम्", "१२३ रुपये", "வணக்கம்", "তামিল নয়, বাংলা",
  "হ্যালো", "ಕನ್ನಡ", "తెలుగు", "മലയാളം", "ગુજરાતી", "ਪੰਜਾਬੀ", "සිංහල", "ଓଡ଼ିଆ",
  // Southeast Asian
  "สวัสดีชาวโลก", "ภาษาไทยไม่มีช่องว่าง", "ສະບາຍດີ", "សួស្តី", "မင်္ဂလာပါ",
  // CJK
  "你好，世界！", "中文分词测试", "繁體中文", "漢字", "日本語のテキスト", "「引用」、句読点。", "𠀀𠀁𠀂",
  "北京市朝阳区", "我爱自然语言处理", "一二三四五六七八九十", "（全角括号）", "ＡＢＣ ａｂｃ",
  // Korean
  "안녕하세요 세계", "한국어", "대한민국", "ㄱㄴㄷㄹ", "각", "ᄒᆞᆫ", "ﾡﾢﾣ",
  // Japanese
  "こんにちは世界", "カタカナ", "ひらがな", "ｶﾀｶﾅ", "ｶﾞｷﾞ", "か\u3099き\u3099", "ラーメン", "ゔ",
  "東京タワー", "ありがとうございます", "ヴァイオリン",
  // other scripts
  "Բարեւ", "გამარჯობა", "ሰላም", "ᏣᎳᎩ", "ᐊᐃᐅ", "ᠮᠣᠩᠭᠣᠯ", "བོད་ཡིག", "ꦗꦮ", "𐌰𐌱𐌲 Gothic",
  "𝐀𝐁𝐂 𝑎𝑏𝑐 𝔄𝔅", "ʕ•ᴥ•ʔ", "¯\\_(ツ)_/¯", "(╯°□°)╯︵ ┻━┻", "ⓐⓑⓒ", "🅰🅱", "ℌℑℜ", "ﬁﬂﬀ",
  "▁hello", "a▁b", "▁▁▁", "ĠĊĉ", "Ġhello", "ĀāĂ", "\ufffd", "a\ufffdb", "\ue000\uf8ff",
  "\ufffe\uffff", "\u{10000}", "\u{10ffff}", "\u{f0000}", "\u{e0001}\u{e0041}",
];
for (const p of phrases) {
  add(p);
  add(p.normalize("NFC"));
  add(p.normalize("NFD"));
  add(" " + p);
  if (p.toUpperCase() !== p) add(p.toUpperCase());
}
// Hangul: syllables, their NFD (conjoining jamo), and jamo written decomposed by hand.
for (let i = 0; i < 40; i++) {
  const s = randomWord(range(0xac00, 0xd7a3), 1, 5);
  add(s);
  add(s.normalize("NFD"));
}
const combining = range(0x0300, 0x036f);
for (let i = 0; i < 40; i++) {
  const base = randomWord("aeiouAEIOUnNcCsSzZ".split(""), 1, 1);
  let s = base;
  const n = 1 + below(i < 30 ? 2 : 12);
  for (let k = 0; k < n; k++) s += pick(combining);
  add(s);
  add(s.normalize("NFC"));
  add("x" + s + " y");
}
const scriptRanges = {
  latin1: range(0x00c0, 0x00ff).filter((c) => c !== "×" && c !== "÷"),
  latinExtA: range(0x0100, 0x017f),
  cyrillic: range(0x0430, 0x044f),
  greek: range(0x03b1, 0x03c9),
  arabic: range(0x0621, 0x064a),
  hebrew: range(0x05d0, 0x05ea),
  devanagari: range(0x0905, 0x0939).concat(range(0x093e, 0x094d)),
  thai: range(0x0e01, 0x0e3a),
  cjk: range(0x4e00, 0x9fa5),
  hangul: range(0xac00, 0xd7a3),
  hiragana: range(0x3041, 0x3096),
  katakana: range(0x30a1, 0x30fa),
  armenian: range(0x0561, 0x0586),
  georgian: range(0x10d0, 0x10fa),
  ethiopic: range(0x1200, 0x1248),
  bengali: range(0x0985, 0x09b9),
  tamil: range(0x0b85, 0x0bb9),
};
for (const [, chars] of Object.entries(scriptRanges)) {
  for (let i = 0; i < 12; i++) {
    const words = [];
    const n = 1 + below(6);
    for (let k = 0; k < n; k++) words.push(randomWord(chars, 1, 9));
    add(words.join(pick([" ", " ", " ", "", ", ", ". ", "\n"])));
  }
}

// ---- 6. code in several languages ----

begin("code");
const code = [
  `def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n`,
  `#include <stdio.h>\n\nint main(void)\n{\n\tprintf("hello, world\\n");\n\treturn 0;\n}\n`,
  `const add = (a, b) => a + b;\nconsole.log(add(2, 3)); // 5\n`,
  `fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n`,
  `package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}\n`,
  `SELECT id, name FROM users WHERE age >= 18 AND name LIKE 'A%' ORDER BY id DESC LIMIT 10;`,
  `#!/bin/sh\nset -eu\nfor f in *.txt; do\n  wc -l "$f"\ndone | sort -n > counts.log 2>&1\n`,
  `<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>T</title></head>\n<body><p class="x">Hi &amp; bye</p></body>\n</html>\n`,
  `{"name": "rocmforge", "version": "0.1.0", "tags": ["c", "llm"], "nested": {"a": [1, 2.5, null, true]}}`,
  `all: build\n\nbuild:\n\tcmake -S . -B build && cmake --build build -j$(nproc)\n.PHONY: all build\n`,
  `\\begin{equation}\n  E = mc^2 \\quad \\int_0^\\infty e^{-x^2}\\,dx = \\frac{\\sqrt{\\pi}}{2}\n\\end{equation}`,
  `^(?:[a-z0-9!#$%&'*+/=?^_\`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_\`{|}~-]+)*)@example\\.com$`,
  `class Stack<T> {\n  private items: T[] = [];\n  push(x: T): void { this.items.push(x); }\n  pop(): T | undefined { return this.items.pop(); }\n}\n`,
  `public static void main(String[] args) {\n    System.out.println(String.format("%05d", 42));\n}`,
  `for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; } // dot product`,
  `x = [i**2 for i in range(10) if i % 2 == 0]\nprint(f"{x!r:>20}")\n`,
  `if (ptr != NULL && *ptr == '\\0') { return -EINVAL; }`,
  `local t = {1, 2, 3}\nfor i, v in ipairs(t) do print(i, v) end`,
  `(defun square (x) (* x x))\n(mapcar #'square '(1 2 3))`,
  `SELECT COUNT(*) AS n, AVG(score)::numeric(10,2) FROM results GROUP BY run_id HAVING n > 5;`,
  `matrix = np.zeros((3, 3), dtype=np.float32)\nmatrix[1:, :2] += 1.5e-3\n`,
  `<?php echo htmlspecialchars($_GET['q'] ?? '', ENT_QUOTES); ?>`,
  `#define MAX(a, b) ((a) > (b) ? (a) : (b))\nstatic_assert(sizeof(int) == 4, "int is 4 bytes");`,
  `    return x;`,
  `\t\treturn x;`,
  `}}}}]]]])))`,
  `a->b->c; a::b::c; a.b.c; a?.b?.c; a ?? b; a !== b; a <=> b; a |> f; x >>= 1; y <<= 2;`,
  `// NOTE(someone): see below\n/* block\n * comment\n */\n# python comment\n-- sql comment\n<!-- html comment -->`,
  `diff --git a/x.c b/x.c\n@@ -1,3 +1,3 @@\n-int x = 1;\n+int x = 2;\n`,
  `    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n`,
];
for (const c of code) {
  add(c);
  add(c.replace(/\n/g, "\r\n"));
  add(c.replace(/^ {4}/gm, "\t"));
  add(c.replace(/\t/g, "    "));
}

// ---- 7. emoji ----

begin("emoji");
const emoji = [
  "😀", "😀😀😀", "👍", "👍🏻", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏿‍🚀", "👩🏻‍❤️‍💋‍👨🏼", "🏳️‍🌈", "🏴‍☠️",
  "🇺🇸", "🇫🇷🇩🇪🇯🇵", "🇦", "🇦🇦🇦", "1️⃣", "#️⃣", "*️⃣", "2️⃣0️⃣2️⃣4️⃣", "❤️", "❤", "☺︎", "☺️",
  "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "🏴󠁧󠁢󠁥󠁮󠁧󠁿", "🤷‍♀️", "🤷🏾‍♂️", "🫠", "🫨", "🦄", "🧬", "⌚", "⭐", "✨", "🔥🔥", "💯",
  "I ❤️ NY", "Good job 👍!", "🎉 Party 🎉", "emoji🙂inside🙂words", "😀 😃 😄 😁", "(😀)", "\"😀\"",
  "😀\n😀", "‍", "👨\u200d", "\u200d👩", "🏻", "🏻🏼🏽", "️", "a️", "ab\u{fe0f}c", "👁️‍🗨️",
];
for (const e of emoji) {
  add(e);
  add(" " + e);
  add(e + " text");
}
const emojiRange = range(0x1f300, 0x1f64f).concat(range(0x1f680, 0x1f6c5), range(0x1f900, 0x1f9ff));
const tones = range(0x1f3fb, 0x1f3ff);
for (let i = 0; i < 40; i++) {
  let s = "";
  const n = 1 + below(5);
  for (let k = 0; k < n; k++) {
    s += pick(emojiRange);
    if (chance(0.2)) s += pick(tones);
    if (chance(0.15)) s += "\u200d" + pick(emojiRange);
    if (chance(0.3)) s += " ";
  }
  add(s);
}

// ---- 8. special-token look-alikes ----

begin("special-token look-alikes");
const specials = [
  "<s>", "</s>", "<unk>", "<pad>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
  "<|start_header_id|>", "<|end_header_id|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
  "<think>", "</think>", "<tool_call>", "</tool_call>", "<|reserved_special_token_5|>",
  "<|reserved_special_token_999|>", "<|fim_prefix|>", "<|vision_start|>",
  // partial and altered forms
  "<s", "s>", "< s>", "<s >", "<S>", "</S>", "<<s>>", "<|im_start", "im_start|>", "<|im_start|",
  "|im_start|>", "<|IM_START|>", "<| im_start |>", "<|begin_of_text", "begin_of_text|>",
  "<|eot_id>", "<eot_id|>", "<|endoftext", "<think", "think>", "</think", "<|", "|>", "<>", "</>",
];
for (const t of specials) {
  for (const s of [t, ` ${t}`, `${t} `, `a ${t} b`, `a${t}b`, `${t}${t}`, `\n${t}\n`]) add(s);
}
for (const s of [
  "<s>Hello</s>", "<s> Hello </s>", "<s>\n", "</s><s>", "<s><s><s>",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
  "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  "<think>\nreasoning here\n</think>\n\nanswer",
  "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>",
  "text<|im_end|>more text<|endoftext|>", "<|im_start|><|im_end|>", "<|im_start|>  <|im_end|>",
  "[INST] hello [/INST]", "<<SYS>>\nsystem\n<</SYS>>", "<|user|>\nhi<|end|>", "<start_of_turn>user",
  // prefixes of longer added tokens, and added tokens against normalisation
  "<|reserved_special_token_1|>0", "<|reserved_special_token_10|>", "<|reserved_special_token_100|>",
  "<|reserved_special_token_1|><|reserved_special_token_10|>", "<think><think>>", "<<think>",
  "e\u0301<|im_end|>\u0301", "<|im_end|>\u0301", "\u0301<s>", "<s>\u0301", "caf\u0065\u0301<|endoftext|>",
  "\u3000<|im_start|>\u3000", "\ufeff<s>", "<s>\ufeff", "\u00a0<|eot_id|>\u00a0",
]) add(s);

// ---- 9. long strings and repetitions ----

begin("long strings");
const words = (
  "the of and to in is was that for on with as by at from his her they this which " +
  "be are an not or have had but one all were when we there can been has more if will " +
  "would who so no out up into time than them some could do other about its only new " +
  "model token batch queue result prompt kernel memory cache block sequence layer weight " +
  "tensor vector matrix scalar byte piece merge rank vocabulary database server client " +
  "quickly slowly carefully never always often rarely green blue red yellow happy small " +
  "large ancient modern river mountain forest ocean city village window door garden"
).split(" ");
function prose(target) {
  let s = "";
  let sentenceStart = true;
  while (s.length < target) {
    let w = pick(words);
    if (sentenceStart) w = upperFirst(w);
    s += w;
    sentenceStart = chance(0.08);
    s += sentenceStart ? pick([". ", "! ", "? ", ".\n"]) : chance(0.06) ? ", " : " ";
  }
  return s;
}
add("a".repeat(5000));
add(" ".repeat(3000));
add("\n".repeat(2000));
add("\t".repeat(1000));
add("ab".repeat(2500));
add("aaaaaaaaaa ".repeat(400));
add("1".repeat(5000));
add("0123456789".repeat(2500));
add("😀".repeat(1000));
add("的".repeat(3000));
add("a\u0308".repeat(1000));
add("- ".repeat(1500));
add(".".repeat(4000));
add("Ā".repeat(2000));
add("<s>".repeat(500));
add("<|im_start|>".repeat(200));
add(" a".repeat(2500));
add("'s".repeat(1500));
add("\r\n".repeat(1000));
add(prose(24 * 1024));
add(prose(8 * 1024).replace(/\n/g, " "));
{
  const all = Object.values(scriptRanges).flat().concat(emojiRange, [" ", " ", " ", ", ", "\n"]);
  let s = "";
  while (s.length < 30000) s += pick(all);
  add(s);
}
{
  let s = "";
  while (s.length < 20480) s += pick(code);
  add(s);
}
{
  let s = "";
  while (s.length < 20480) s += String.fromCharCode(32 + below(95));
  add(s);
}

// ---- 10. single characters and controls ----

begin("single characters and controls");
for (let c = 0x20; c < 0x7f; c++) {
  add(cp(c));
  add(" " + cp(c));
  add(cp(c) + cp(c) + cp(c));
}
for (let c = 0; c < 0x20; c++) {
  add(cp(c));
  add(`a${cp(c)}b`);
}
add("\u007f");
add("a\u007fb");
add("\u0000\u0000");
add("NUL\u0000inside");
for (let c = 0x80; c <= 0x9f; c++) add(cp(c));
for (const c of [
  0xa1, 0xa7, 0xab, 0xad, 0xb5, 0xbf, 0xd7, 0xf7, 0x2c6, 0x2dc, 0x300, 0x301, 0x308, 0x34f, 0x2011,
  0x2016, 0x2020, 0x2030, 0x203b, 0x2044, 0x20ac, 0x20bf, 0x2116, 0x2122, 0x2190, 0x21d2, 0x2200,
  0x2211, 0x221e, 0x2248, 0x2260, 0x2264, 0x2500, 0x2588, 0x25cf, 0x2605, 0x2620, 0x263a, 0x2665,
  0x2713, 0x2764, 0x27a1, 0x2b50, 0x3001, 0x3002, 0x300c, 0x30fb, 0xff01, 0xff0c, 0xff1f, 0xfe0f,
  0x202e, 0x202d, 0x200e, 0x200f, 0x2066, 0x2069, 0x1d11e, 0x1f004, 0x20000, 0x2a6d6, 0xe0020,
]) {
  add(cp(c));
  add(`a${cp(c)}b`);
}
add("\u202eevil\u202c text");
add("Z\u0351\u0364\u0367\u0305a\u0352\u0308l\u0300\u0313g\u0315o\u0334\u0310");

// ---- 11. random mixtures of everything above ----

begin("random mixtures");
const fragments = [
  () => pick(words),
  () => upperFirst(pick(words)),
  () => pick(words).toUpperCase(),
  () => String(below(100000)),
  () => String(below(10)).repeat(1 + below(8)),
  () => pick([" ", "  ", "\t", "\n", "\r\n", " \n", "\n\n", "   "]),
  () => pick([".", ",", "!", "?", ";", ":", "-", "(", ")", "\"", "'", "...", "—", "/", "&"]),
  () => pick(emoji),
  () => pick(specials),
  () => `'${pick(["s", "S", "ll", "LL", "t", "re", "ve", "m", "d", "D"])}`,
  () => pick(phrases),
  () => randomWord(pick(Object.values(scriptRanges)), 1, 6),
  () => cp(pick(unicodeSpaces)),
  () => pick(phrases).normalize("NFD"),
];
for (let i = 0; i < 700; i++) {
  let s = "";
  const n = 1 + below(14);
  for (let k = 0; k < n; k++) s += pick(fragments)();
  add(s);
}

// ---- output ----

const text = corpus.map((s) => JSON.stringify(s)).join("\n") + "\n";
const args = process.argv.slice(2);
let out = join(here, "corpus.jsonl");
let check = false;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--out" && i + 1 < args.length) out = args[++i];
  else if (args[i] === "--check") check = true;
  else {
    console.error(`make_corpus: unknown argument '${args[i]}'; usage: make_corpus.mjs [--out FILE] [--check]`);
    process.exit(2);
  }
}
for (const c of categories)
  console.error(`  ${c.name.padEnd(32)} lines ${String(c.first).padStart(4)}-${String(c.first + c.count - 1).padEnd(4)} (${c.count})`);
const longest = Math.max(...corpus.map((s) => Buffer.byteLength(s, "utf8")));
console.error(`make_corpus: ${corpus.length} strings, ${Buffer.byteLength(text)} bytes, longest ${longest} bytes`);
if (check) {
  let old = "";
  try {
    old = readFileSync(out, "utf8");
  } catch (e) {
    console.error(`make_corpus: cannot read ${out}: ${e.message}`);
    process.exit(1);
  }
  if (old !== text) {
    console.error(`make_corpus: ${out} differs from what this script writes: run node ${join(here, "make_corpus.mjs")}`);
    process.exit(1);
  }
  console.error(`make_corpus: ${out} is up to date`);
} else {
  writeFileSync(out, text);
  console.error(`make_corpus: wrote ${out}`);
}
