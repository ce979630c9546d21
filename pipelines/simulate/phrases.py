"""Phrase banks for simulated business chatter, written for Vigil (English, Chinese, Japanese).

Slots in braces are filled by :mod:`pipelines.simulate.text`: ``{first}`` the recipient's short
name, ``{me}`` the sender's, ``{colleague}`` another employee, ``{day}``, ``{time}``, ``{doc}``,
``{ticker}``, ``{pct}``, ``{amount}``, ``{city}``. Only the name slots hold personal data; the rest
are chosen so that no phrase contains anything a DLP detector should flag (no long digit runs).
"""

from __future__ import annotations

TOPICS = ("scheduling", "documents", "portfolio", "markets", "smalltalk", "admin")

DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "zh": ("周一", "周二", "周三", "周四", "周五"),
    "ja": ("月曜日", "火曜日", "水曜日", "木曜日", "金曜日"),
}
TIMES = ("9:30", "10:00", "10:45", "11:15", "12:30", "2pm", "3:30pm", "4pm", "5:15pm")
DOCS = {
    "en": (
        "the account opening form",
        "the Q4 statement",
        "the fee schedule",
        "the risk questionnaire",
        "the trust deed",
        "the updated mandate",
        "the term sheet",
        "the tax certificate",
        "the KYC pack",
    ),
    "zh": ("开户表格", "第四季度对账单", "费用说明", "风险评估问卷", "授权书", "产品条款", "税务证明"),
    "ja": (
        "口座開設書類",
        "第4四半期の報告書",
        "手数料表",
        "リスク確認書",
        "委任状",
        "商品概要書",
        "税務証明書",
    ),
}
TICKERS = (
    "Apple",
    "Tencent",
    "Toyota",
    "HSBC",
    "Nvidia",
    "Alibaba",
    "Sony",
    "LVMH",
    "TSMC",
    "S&P 500",
    "Nikkei 225",
)
PCTS = ("1.5%", "2%", "3.2%", "4%", "4.75%", "5%", "7%", "10%", "12%")
AMOUNTS = ("50k", "100k", "250k", "half a million", "$1.2m", "$300k", "HK$2m", "¥5m", "£75k")
CITIES = ("New York", "London", "Hong Kong", "Singapore", "Tokyo", "Shanghai", "Zurich", "Sydney")

GREETINGS = {
    "en": (
        "Hi {first},",
        "Hello {first},",
        "Good morning {first},",
        "Hey {first} -",
        "Hi {first}!",
        "Morning {first},",
        "Good afternoon {first},",
        "Hi,",
        "Hello,",
        "Hi there,",
    ),
    "zh": ("{first}您好，", "{first}，你好！", "您好，", "早上好{first}，", "{first}，下午好。"),
    "ja": (
        "{first}さん、お世話になっております。",
        "{first}さん、こんにちは。",
        "お疲れさまです。",
        "{first}さん、おはようございます。",
    ),
}

ACKS = {
    "en": (
        "Thanks!",
        "Great, thank you.",
        "Perfect.",
        "Got it, thanks.",
        "Sounds good.",
        "OK 👍",
        "Will do.",
        "Thank you so much.",
        "Noted.",
        "Brilliant, cheers.",
        "Appreciate it.",
        "Sure thing.",
    ),
    "zh": ("好的，谢谢！", "收到。", "没问题。", "谢谢您！", "明白了。", "好的👍"),
    "ja": ("承知しました。", "ありがとうございます！", "了解です。", "助かります。", "かしこまりました。"),
}

EMPLOYEE = {
    "en": {
        "scheduling": (
            "Are you free for a quick call on {day} at {time}?",
            "Could we move our catch-up to {day}? Something came up on my side.",
            "I've sent a calendar invite for {day} {time}, shout if that doesn't work.",
            "Running about ten minutes late, sorry - be there shortly.",
            "Would you prefer to meet at the office or do it over video?",
            "Let's lock in {day} then. I'll bring {colleague} along for the tax questions.",
            "Just confirming we're still on for {time} today.",
            "I'm in {city} next week, happy to meet in person if you're around.",
        ),
        "documents": (
            "I've emailed you {doc}, could you sign page 3 and send it back?",
            "Did {doc} come through all right?",
            "We still need {doc} before we can process the transfer.",
            "Please find {doc} in the portal, it's under Documents > Recent.",
            "No rush on {doc}, but we'd like it by {day} if possible.",
            "I'll courier the originals of {doc} to you this afternoon.",
            "Compliance asked for a fresh copy of {doc}, sorry for the back and forth.",
        ),
        "portfolio": (
            "Your portfolio is up about {pct} since we rebalanced.",
            "We trimmed the {ticker} position as discussed.",
            "I'd suggest we keep some cash aside for the {day} auction.",
            "The bond ladder rolls over next month, shall we reinvest on the same terms?",
            "Your allocation to equities is now a bit above target, I'd trim by {pct}.",
            "I've put together two options for the {amount} you mentioned.",
            "The dividend from {ticker} landed in your account this morning.",
            "Happy to walk you through the performance report whenever suits.",
        ),
        "markets": (
            "{ticker} reports tonight, expect some volatility tomorrow.",
            "Rates moved quite a bit overnight, nothing we need to act on yet.",
            "Our research team published a note on {ticker} this morning, I'll forward it.",
            "Markets are quiet ahead of the central bank decision on {day}.",
            "FX has been choppy, we hedged the yen exposure last week.",
            "Credit spreads tightened again, which helps the bond sleeve.",
        ),
        "smalltalk": (
            "How was the trip to {city}?",
            "Hope the family is well!",
            "Congrats on the new job, that's great news.",
            "Enjoy the long weekend!",
            "Did you manage to see the match last night?",
            "Happy new year! Hope you had a restful break.",
            "The weather in {city} has been miserable all week.",
        ),
        "admin": (
            "Your new card should arrive within five working days.",
            "I've updated your mailing address on file.",
            "The transfer has been submitted, it normally settles in two days.",
            "Can you confirm the beneficiary name for the payment?",
            "Our office is closed on {day} for the holiday.",
            "I'll ask {colleague} in operations to chase it.",
        ),
    },
    "zh": {
        "scheduling": (
            "{day}{time}方便通个电话吗？",
            "我们的会面能改到{day}吗？我这边临时有事。",
            "会议邀请已发，时间是{day}{time}。",
            "我会请{colleague}一起参加，讨论税务问题。",
            "下周我在{city}，方便的话可以当面聊。",
        ),
        "documents": (
            "{doc}已发到您邮箱，请签字后寄回。",
            "请问{doc}收到了吗？",
            "办理转账之前还需要{doc}。",
            "{doc}不急，{day}之前给我们就可以。",
            "合规部门需要一份新的{doc}，麻烦您了。",
        ),
        "portfolio": (
            "再平衡之后，您的组合上涨了大约{pct}。",
            "按照之前的讨论，我们减持了{ticker}。",
            "您提到的{amount}，我准备了两个方案。",
            "{ticker}的股息今天早上已经到账。",
            "股票占比略高于目标，建议减持{pct}。",
        ),
        "markets": (
            "{ticker}今晚公布业绩，明天可能会有波动。",
            "隔夜利率变化较大，暂时不需要操作。",
            "研究部今天发布了关于{ticker}的报告，我转给您。",
            "汇率波动较大，上周我们已经对冲了日元敞口。",
        ),
        "smalltalk": (
            "{city}之行怎么样？",
            "祝您和家人新年快乐！",
            "周末愉快！",
            "最近天气变冷了，注意保暖。",
        ),
        "admin": (
            "新卡会在五个工作日内寄到。",
            "您的通讯地址已经更新。",
            "转账已经提交，一般两天到账。",
            "{day}是假期，我们办公室不开门。",
        ),
    },
    "ja": {
        "scheduling": (
            "{day}の{time}にお電話してもよろしいでしょうか。",
            "打ち合わせを{day}に変更していただけますか。",
            "{day}{time}で招待をお送りしました。",
            "税務の件で{colleague}も同席させていただきます。",
            "来週{city}に伺いますので、よろしければお会いしませんか。",
        ),
        "documents": (
            "{doc}をメールでお送りしました。ご署名の上ご返送ください。",
            "{doc}は届きましたでしょうか。",
            "お振込みの手続きには{doc}が必要です。",
            "{doc}は{day}までで結構です。",
        ),
        "portfolio": (
            "リバランス後、ポートフォリオは約{pct}上昇しています。",
            "ご相談どおり{ticker}の保有を一部売却しました。",
            "お話のあった{amount}について、二つの案をご用意しました。",
            "{ticker}の配当金が本日入金されました。",
        ),
        "markets": (
            "{ticker}は今夜決算発表です。明日は値動きが大きくなるかもしれません。",
            "金利が大きく動きましたが、現時点で対応は不要です。",
            "本日{ticker}に関するレポートが出ましたので転送します。",
        ),
        "smalltalk": (
            "{city}への出張はいかがでしたか。",
            "良い週末をお過ごしください。",
            "寒くなってきましたので、ご自愛ください。",
        ),
        "admin": (
            "新しいカードは五営業日以内に届く予定です。",
            "ご住所の変更を承りました。",
            "お振込みは二営業日ほどで完了します。",
        ),
    },
}

CONTACT = {
    "en": {
        "scheduling": (
            "{day} works for me, {time}?",
            "Can we do later in the afternoon? I'm tied up until {time}.",
            "Sorry, I need to push our call - can we do {day} instead?",
            "I'm travelling to {city} that week, video call would be easier.",
            "Ring me when you have a minute, nothing urgent.",
        ),
        "documents": (
            "Got {doc}, I'll sign it tonight.",
            "I can't find {doc} in the portal, could you resend?",
            "Which page of {doc} needs my signature?",
            "Sent {doc} back this morning, let me know if anything's missing.",
            "Do you need the original of {doc} or is a scan fine?",
        ),
        "portfolio": (
            "How is the portfolio doing this month?",
            "Should I be worried about {ticker} after the news?",
            "I'd like to put another {amount} to work, what would you suggest?",
            "Can we reduce the risk a bit? I'm retiring in a couple of years.",
            "What's the yield on the bond fund now?",
            "I saw {ticker} dropped {pct} today, are we still comfortable holding it?",
        ),
        "markets": (
            "What's your view on {ticker} after the results?",
            "Is now a good time to add to equities or should I wait?",
            "My friend says rates will fall soon, do you agree?",
            "Any thoughts on the yen?",
        ),
        "smalltalk": (
            "Trip was great, thanks for asking!",
            "All good here, kids are back at school.",
            "Happy new year to you too!",
            "Ha, don't remind me about the match.",
        ),
        "admin": (
            "Has the transfer gone through yet?",
            "I moved house, can you update my address?",
            "My card still hasn't arrived.",
            "The beneficiary is my daughter, same surname.",
        ),
    },
    "zh": {
        "scheduling": (
            "{day}可以，{time}方便吗？",
            "我{time}之前有会，晚一点可以吗？",
            "下周我在{city}，视频通话吧。",
            "有空给我回个电话，不急。",
        ),
        "documents": (
            "{doc}收到了，今晚签好。",
            "在网上找不到{doc}，能再发一次吗？",
            "{doc}今天早上已经寄回了。",
            "需要原件还是扫描件就可以？",
        ),
        "portfolio": (
            "这个月组合表现怎么样？",
            "{ticker}出了新闻，需要担心吗？",
            "我想再投{amount}，有什么建议？",
            "能不能把风险降低一点？",
            "{ticker}今天跌了{pct}，还继续持有吗？",
        ),
        "markets": ("{ticker}业绩出来后您怎么看？", "现在适合加仓吗？", "您怎么看人民币走势？"),
        "smalltalk": ("旅行很愉快，谢谢关心！", "一切都好。", "新年快乐！"),
        "admin": ("转账到了吗？", "我搬家了，麻烦更新一下地址。", "卡还没收到。"),
    },
    "ja": {
        "scheduling": (
            "{day}の{time}で大丈夫です。",
            "{time}までは会議なので、その後でお願いできますか。",
            "来週は{city}にいるのでオンラインでお願いします。",
        ),
        "documents": (
            "{doc}を受け取りました。今夜署名します。",
            "{doc}が見つからないので再送いただけますか。",
            "{doc}は今朝返送しました。",
        ),
        "portfolio": (
            "今月の運用状況はいかがですか。",
            "{ticker}のニュースが出ましたが大丈夫でしょうか。",
            "追加で{amount}投資したいのですが、何かおすすめはありますか。",
            "リスクを少し下げたいです。",
        ),
        "markets": (
            "決算後の{ticker}についてどう思われますか。",
            "今は株を買い増す時期でしょうか。",
            "円相場の見通しを教えてください。",
        ),
        "smalltalk": (
            "出張は順調でした。ありがとうございます。",
            "こちらは皆元気です。",
            "あけましておめでとうございます。",
        ),
        "admin": (
            "振込はもう完了しましたか。",
            "引っ越したので住所変更をお願いします。",
            "カードがまだ届いていません。",
        ),
    },
}

# Sentences long messages are built from: market commentary, planning notes, meeting follow-ups.
LONG = {
    "en": (
        "Following up on our conversation yesterday, I wanted to set out the options in writing.",
        "The first option keeps the current allocation and simply adds to the bond ladder as it matures.",
        "The second moves about {pct} from equities into short-dated government paper, "
        "which lowers volatility.",
        "Either way we would stay within the risk profile you signed off last year.",
        "Fees would not change under either option.",
        "{ticker} remains our largest single holding and we are comfortable with the position for now.",
        "Our research desk expects earnings to hold up better than the market fears.",
        "If you would like to discuss, {colleague} and I can set aside time on {day}.",
        "Please also have a look at {doc}, which I sent over on Monday.",
        "We will need it signed before the end of the month to keep the mandate current.",
        "On the tax side, nothing changes for this year, but it is worth revisiting in the spring.",
        "Let me know which way you are leaning and I will prepare the paperwork.",
        "Currency moves have been the main driver of returns this quarter.",
        "We kept the hedge on the yen exposure, which has helped.",
        "Cash is earning a reasonable rate at the moment, so there is no pressure to deploy it quickly.",
    ),
    "zh": (
        "关于昨天的讨论，我把几个方案整理如下。",
        "第一个方案保持现有配置，债券到期后继续滚动投资。",
        "第二个方案把大约{pct}的股票仓位转为短期国债，以降低波动。",
        "两个方案都在您去年确认的风险等级之内，费用也不变。",
        "{ticker}仍是我们最大的单一持仓，目前我们对此比较放心。",
        "如果您想详细讨论，我和{colleague}可以在{day}安排时间。",
        "另外请看一下{doc}，月底之前需要签好。",
        "本季度收益主要来自汇率变化。",
    ),
    "ja": (
        "昨日のお話を踏まえ、選択肢を整理してお送りします。",
        "一つ目は現在の配分を維持し、満期を迎えた債券を再投資する案です。",
        "二つ目は株式の約{pct}を短期国債に移し、値動きを抑える案です。",
        "いずれも昨年ご確認いただいたリスク許容度の範囲内で、手数料も変わりません。",
        "{ticker}は引き続き最大の保有銘柄ですが、現時点で懸念はございません。",
        "詳しくご説明する場合は、{colleague}と私で{day}にお時間をいただけますと幸いです。",
        "また、{doc}を月末までにご署名いただく必要がございます。",
    ),
}

INTERNAL = (
    "Can you cover my {time} with the client? I'm stuck on a call.",
    "Research note on {ticker} is out, worth a read before the morning meeting.",
    "Who's handling the {city} onboarding? Compliance is asking.",
    "Lunch at 12:30?",
    "I've left the updated deck on the shared drive.",
    "The client wants to move {amount} out of equities, can you price it?",
    "Thanks for jumping on that earlier, really helped.",
    "Heads up: {doc} template changed, use the new version.",
    "Are we still doing the desk review on {day}?",
    "{colleague} is out today, I'm covering her book.",
    "FYI the {ticker} order is filled.",
    "Can you double-check the fee calculation before I send it?",
    "Morning all, quiet start in {city}.",
    "Ops says the transfer will settle tomorrow.",
)

BOT = {
    "en": {
        "greeting": "Hello, I'm the {firm} assistant. Who would you like to reach today?",
        "clarify": "Sorry, I didn't catch that. Who do you usually deal with here? "
        "A name or their direct line is enough.",
        "topic": "Thanks. What is it about - your account, a transfer, or something else?",
        "connecting": "One moment, I'm connecting you with {colleague}.",
    },
    "zh": {
        "greeting": "您好，我是{firm}的智能助理。请问您想联系哪位同事？",
        "clarify": "抱歉，我没有理解。请告诉我您平时联系的同事姓名或电话。",
        "topic": "谢谢。请问是关于账户、转账还是其他事项？",
        "connecting": "请稍候，正在为您转接{colleague}。",
    },
    "ja": {
        "greeting": "こんにちは、{firm}のアシスタントです。どの担当者におつなぎしましょうか。",
        "clarify": "申し訳ありません。担当者のお名前か電話番号を教えていただけますか。",
        "topic": "ありがとうございます。ご用件は口座、送金、その他のどれでしょうか。",
        "connecting": "{colleague}におつなぎします。少々お待ちください。",
    },
}

CONTACT_TO_BOT = {
    "en": (
        "I'd like to speak with {colleague}",
        "My advisor is {colleague}",
        "not sure, someone about my account",
        "{colleague} please",
    ),
    "zh": ("我想找{colleague}", "我的顾问是{colleague}", "不太确定，想问账户的事"),
    "ja": ("{colleague}さんをお願いします", "担当は{colleague}さんです", "口座のことで相談したいです"),
}
BOT_TOPICS = {
    "en": ("my account", "a transfer", "new investment"),
    "zh": ("账户", "转账", "新的投资"),
    "ja": ("口座", "送金", "新規の投資"),
}

WHATSAPP_TEMPLATES = (
    (
        "followup_documents_v2",
        "Hello {first}, this is {me} from {firm}. I have sent you some documents to review. "
        "Reply here when convenient.",
    ),
    (
        "meeting_reminder_v1",
        "Hello {first}, a reminder of our meeting on {day} at {time}. Reply here if you need to change it.",
    ),
    (
        "account_update_v3",
        "Hello {first}, {me} from {firm} here. There is an update on your account; reply to this message "
        "and I will share the details.",
    ),
    ("check_in_v1", "Hello {first}, it's {me} from {firm}. Do you have a few minutes to catch up this week?"),
)

VOICEMAIL = {
    "en": (
        "Hi {first}, it's {me}. Just calling about {doc}, give me a ring back when you get a chance. Thanks.",
        "Hello, this is {me}. I saw the news about {ticker} and wanted to talk it through. "
        "Call me back please.",
        "Hi, it's {me} again. No rush, but I'd like to move some money around before {day}. Speak soon.",
        "{first}, hi, {me} here. Can we push Thursday's meeting? Something came up. Bye.",
        "Good morning, this is {me}. I have a question about the last statement, a couple of charges "
        "I don't recognise. Please call me.",
        "Hey {first}, {me}. Quick one about the transfer, has it gone through? Cheers.",
    ),
}

CAPTIONS = {
    "en": (
        "Here's the screenshot",
        "Photo of the signed page",
        "See attached",
        "This is the letter I got",
        "",
        "",
    ),
    "zh": ("截图在这里", "签好的那页", "请看附件", ""),
    "ja": ("スクリーンショットです", "署名したページの写真です", "添付をご確認ください", ""),
}

CONSENT_YES = ("YES", "Yes", "yes please", "Yes, that's fine", "OK")
CONSENT_NO = ("NO", "No thanks", "STOP")
