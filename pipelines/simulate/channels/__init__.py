"""One module per channel: its rules as a pure state machine, and a script of what people try."""

from __future__ import annotations

from pipelines.record import Channel
from pipelines.simulate.channels.base import ConversationSpec, Script, Simulation
from pipelines.simulate.channels.line import LineScript
from pipelines.simulate.channels.mms import MmsScript
from pipelines.simulate.channels.sms import SmsScript
from pipelines.simulate.channels.teams import InternalChatScript, TeamsAppScript
from pipelines.simulate.channels.voicemail import VoicemailScript
from pipelines.simulate.channels.wechat import WeChatScript
from pipelines.simulate.channels.whatsapp import WhatsAppScript

__all__ = ["SCRIPTS", "ConversationSpec", "Script", "Simulation", "script_for"]

#: (channel, conversation kind) -> script class
SCRIPTS: dict[tuple[Channel, str], type[Script]] = {
    (Channel.SMS, "direct"): SmsScript,
    (Channel.MMS, "direct"): MmsScript,
    (Channel.VOICEMAIL, "direct"): VoicemailScript,
    (Channel.WHATSAPP, "direct"): WhatsAppScript,
    (Channel.WHATSAPP, "group"): WhatsAppScript,
    (Channel.WECHAT, "direct"): WeChatScript,
    (Channel.WECHAT, "group"): WeChatScript,
    (Channel.LINE, "direct"): LineScript,
    (Channel.TEAMS, "app"): TeamsAppScript,
    (Channel.TEAMS, "internal"): InternalChatScript,
}


def script_for(spec: ConversationSpec, sim: Simulation) -> Script:
    try:
        cls = SCRIPTS[(spec.channel, spec.kind)]
    except KeyError:
        raise ValueError(f"no script for {spec.channel} conversations of kind {spec.kind!r}") from None
    return cls(spec, sim)
