/*
 * screening: what the caller's network hears when screening rejects a call.
 *
 * Asterisk 22 cannot put a header into a final non-2xx response from the dialplan:
 * PJSIP_HEADER(add) reaches outgoing requests only, and PJSIPHangup's response carries
 * "Reason: Q.850;cause=0" (res_pjsip_rfc3326 adds the channel's hangup cause, and none is
 * set yet). This module adds the application ScreeningHangup(CODE): PJSIPHangup's
 * rejection, with
 *
 *   - the channel's hangup cause set to 21 (call rejected) first, so that Asterisk's own
 *     Reason says "Q.850;cause=21" (unless the endpoint has suppress_q850_reason_headers);
 *   - SCREENING_SIP_REASON     one more Reason header, of another protocol than Q.850
 *                              (603+'s "SIP;cause=603;text=...");
 *   - SCREENING_SIP_CALL_INFO  a Call-Info header (RFC 8688's jwscard on a 608);
 *   - SCREENING_SIP_PHRASE     the status line's reason phrase (603+'s "Network Blocked").
 *
 * The dialplan ([screening-reject] in asterisk-conf/extensions.conf) sets the variables
 * from what screening decided, never from caller data; still, a value with anything but
 * printable ASCII, or longer than its bound, is refused (logged, that part left out), so no
 * value can add a header or break the message. The variables are read on the channel's own
 * thread under its lock, and the response is built and sent on the call's SIP serializer,
 * as PJSIPHangup does.
 *
 * Copyright (C) 2026, the screening authors.
 *
 * This program is free software, distributed under the terms of the GNU General Public
 * License Version 2, as Asterisk is.
 */

/*** MODULEINFO
	<depend>pjproject</depend>
	<depend>res_pjsip</depend>
	<depend>res_pjsip_session</depend>
	<support_level>extended</support_level>
 ***/

#include "asterisk.h"

#include <pjsip.h>
#include <pjsip_ua.h>

#include "asterisk/causes.h"
#include "asterisk/channel.h"
#include "asterisk/module.h"
#include "asterisk/pbx.h"
#include "asterisk/res_pjsip.h"
#include "asterisk/res_pjsip_session.h"

/* screening's doctor reads this from "module show": bump it when the interface changes. */
#define SCREENING_MODULE_VERSION "1"

/* screening/asterisk/agi.py bounds what a door may set to the same 1024 bytes. */
#define MAX_REASON 1024
#define MAX_CALL_INFO 1024
#define MAX_PHRASE 64

static const char app_name[] = "ScreeningHangup";

struct wanted {
	char reason[MAX_REASON + 1];
	char call_info[MAX_CALL_INFO + 1];
	char phrase[MAX_PHRASE + 1];
};

struct rejection {
	struct ast_sip_session *session;
	int code;
	struct wanted want;
};

/*! Copy a channel variable into buf ("" if unset). Refused (buf left "", -1): longer than
 *  max bytes, or a byte outside printable ASCII (CR, LF, DEL, UTF-8, anything). */
static int read_value(struct ast_channel *chan, const char *name, char *buf, size_t max)
{
	const char *value = pbx_builtin_getvar_helper(chan, name);
	size_t len;
	size_t i;

	buf[0] = '\0';
	if (ast_strlen_zero(value)) {
		return 0;
	}
	len = strnlen(value, max + 1);
	if (len > max) {
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (value[i] < 0x20 || value[i] > 0x7e) {
			return -1;
		}
	}
	memcpy(buf, value, len + 1);
	return 0;
}

/*! The reason phrase is text to the line's end: letters, digits, spaces, a few marks. */
static int phrase_ok(const char *phrase)
{
	for (; *phrase; phrase++) {
		if (!isalnum((unsigned char) *phrase) && !strchr(" -'.,()+", *phrase)) {
			return 0;
		}
	}
	return 1;
}

/*! One RFC 3326 reason-value: a protocol token, ";cause=" digits, then parameters in which
 *  quotes are balanced and no comma stands outside them (a comma would start a second
 *  value). Not Q.850: that one is Asterisk's own, from the cause set here. */
static int reason_ok(const char *reason)
{
	size_t token = strspn(reason, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-");
	const char *c;
	int quoted = 0;

	if (token == 0 || !strncasecmp(reason, "Q.850;", 6) || strncmp(reason + token, ";cause=", 7)
		|| !isdigit((unsigned char) reason[token + 7])) {
		return 0;
	}
	for (c = reason + token; *c; c++) {
		if (*c == '"') {
			quoted = !quoted;
		} else if (*c == '\\' || (*c == ',' && !quoted)) {
			return 0;
		}
	}
	return !quoted;
}

/*! One RFC 8688 Call-Info value: an https URI in angle brackets, then only ;parameters
 *  (letters, digits, = . _ -): no second value, no quotes. */
static int call_info_ok(const char *call_info)
{
	const char *end;
	const char *bad;

	if (strncmp(call_info, "<https://", 9) || !(end = strchr(call_info + 9, '>'))) {
		return 0;
	}
	bad = strpbrk(call_info + 9, "<\" ");
	if (bad && bad < end) {
		return 0;
	}
	end++;
	return *end == ';' && strspn(end, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789;=._-")
		== strlen(end);
}

/*! On the channel's thread, with the channel locked: what the response should carry. */
static void read_wanted(struct ast_channel *chan, struct wanted *want)
{
	const char *name = ast_channel_name(chan);

	if (read_value(chan, "SCREENING_SIP_REASON", want->reason, MAX_REASON)
		|| (want->reason[0] && !reason_ok(want->reason))) {
		ast_log(LOG_WARNING, "%s: SCREENING_SIP_REASON refused (PROTOCOL;cause=N... in "
			"printable ASCII, at most %d bytes, not Q.850: Asterisk sends that one); no Reason "
			"of screening's\n", name, MAX_REASON);
		want->reason[0] = '\0';
	}
	if (read_value(chan, "SCREENING_SIP_CALL_INFO", want->call_info, MAX_CALL_INFO)
		|| (want->call_info[0] && !call_info_ok(want->call_info))) {
		ast_log(LOG_WARNING, "%s: SCREENING_SIP_CALL_INFO refused (<https://...>... in "
			"printable ASCII, at most %d bytes); no Call-Info\n", name, MAX_CALL_INFO);
		want->call_info[0] = '\0';
	}
	if (read_value(chan, "SCREENING_SIP_PHRASE", want->phrase, MAX_PHRASE)
		|| !phrase_ok(want->phrase)) {
		ast_log(LOG_WARNING, "%s: SCREENING_SIP_PHRASE refused (letters, digits, spaces and "
			"-'.,()+ only, at most %d); the code's own phrase is sent\n", name, MAX_PHRASE);
		want->phrase[0] = '\0';
	}
}

static void remove_headers(pjsip_tx_data *tdata, const char *name)
{
	pj_str_t hname = pj_str((char *) name);
	pjsip_hdr *hdr;

	while ((hdr = pjsip_msg_find_hdr_by_name(tdata->msg, &hname, NULL))) {
		pj_list_erase(hdr);
	}
}

/*! pjproject reuses the last provisional response's message for the final one: whatever
 *  is there already goes first, so nothing is duplicated. */
static void apply(pjsip_tx_data *tdata, const struct wanted *want)
{
	remove_headers(tdata, "Reason");
	remove_headers(tdata, "Call-Info");
	if (!ast_strlen_zero(want->reason)) {
		ast_sip_add_header(tdata, "Reason", want->reason);
	}
	if (!ast_strlen_zero(want->call_info)) {
		ast_sip_add_header(tdata, "Call-Info", want->call_info);
	}
	if (!ast_strlen_zero(want->phrase)) {
		pj_strdup2(tdata->pool, &tdata->msg->line.status.reason, want->phrase);
	}
	pjsip_tx_data_invalidate_msg(tdata);
}

/*! On the call's serializer, as PJSIPHangup's own task; res_pjsip_rfc3326 then adds the
 *  Q.850 Reason of the cause set before. */
static int send_rejection(void *obj)
{
	struct rejection *rejection = obj;
	pjsip_inv_session *inv = rejection->session->inv_session;
	pjsip_tx_data *tdata = NULL;

	if (inv->state == PJSIP_INV_STATE_DISCONNECTED
		|| pjsip_inv_answer(inv, rejection->code, NULL, NULL, &tdata) != PJ_SUCCESS) {
		return -1;
	}
	apply(tdata, &rejection->want);
	ast_sip_session_send_response(rejection->session, tdata);
	return 0;
}

static int parse_code(const char *data)
{
	int code;

	if (ast_strlen_zero(data) || strlen(data) != 3 || strspn(data, "0123456789") != 3) {
		return -1;
	}
	code = atoi(data);
	return code >= 400 && code <= 699 ? code : -1;
}

/*! The session of an incoming PJSIP call not answered yet (a reference), else NULL. */
static struct ast_sip_session *rejectable(struct ast_channel *chan)
{
	struct ast_sip_channel_pvt *pvt;
	struct ast_sip_session *session;

	if (strcmp(ast_channel_tech(chan)->type, "PJSIP")) {
		ast_log(LOG_WARNING, "%s: %s needs a PJSIP channel\n", ast_channel_name(chan), app_name);
		return NULL;
	}
	pvt = ast_channel_tech_pvt(chan);
	session = pvt ? pvt->session : NULL;
	if (!session || !session->inv_session || session->inv_session->role != PJSIP_ROLE_UAS
		|| (session->inv_session->state != PJSIP_INV_STATE_INCOMING
			&& session->inv_session->state != PJSIP_INV_STATE_EARLY)) {
		ast_log(LOG_WARNING, "%s: %s: not an incoming call waiting for an answer\n",
			ast_channel_name(chan), app_name);
		return NULL;
	}
	return ao2_bump(session);
}

/*! 0 when the rejection went out; -1 otherwise, so that TryExec's TRYSTATUS tells the
 *  dialplan to fall back to PJSIPHangup. */
static int screening_hangup_exec(struct ast_channel *chan, const char *data)
{
	struct rejection rejection = { .code = parse_code(data) };
	int res;

	if (rejection.code < 0) {
		ast_log(LOG_WARNING, "%s: %s(%s): expected a SIP code from 400 to 699\n",
			ast_channel_name(chan), app_name, S_OR(data, ""));
		return -1;
	}
	ast_channel_lock(chan);
	rejection.session = rejectable(chan);
	if (!rejection.session) {
		ast_channel_unlock(chan);
		return -1;
	}
	read_wanted(chan, &rejection.want);
	ast_channel_hangupcause_set(chan, AST_CAUSE_CALL_REJECTED);
	ast_channel_unlock(chan);

	res = ast_sip_push_task_wait_serializer(rejection.session->serializer, send_rejection,
		&rejection);
	ao2_ref(rejection.session, -1);
	return res ? -1 : 0;
}

static int load_module(void)
{
	if (ast_register_application(app_name, screening_hangup_exec,
		"Reject an incoming PJSIP call with the headers screening chose",
		"ScreeningHangup(CODE): as PJSIPHangup(CODE), with Reason Q.850 cause 21 and the "
		"values of SCREENING_SIP_REASON, SCREENING_SIP_CALL_INFO and SCREENING_SIP_PHRASE "
		"(printable ASCII only, bounded). Sets TRYSTATUS through TryExec: FAILED when "
		"nothing was sent.")) {
		return AST_MODULE_LOAD_DECLINE;
	}
	return AST_MODULE_LOAD_SUCCESS;
}

static int unload_module(void)
{
	return ast_unregister_application(app_name);
}

AST_MODULE_INFO(ASTERISK_GPL_KEY, AST_MODFLAG_LOAD_ORDER,
	/* The version first: `module show` cuts a description at 40 characters. */
	"screening v" SCREENING_MODULE_VERSION ": what a rejected caller hears",
	.support_level = AST_MODULE_SUPPORT_EXTENDED,
	.load = load_module,
	.unload = unload_module,
	.load_pri = AST_MODPRI_APP_DEPEND,
	.requires = "res_pjsip,res_pjsip_session",
);
