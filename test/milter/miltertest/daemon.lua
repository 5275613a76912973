-- miltertest (OpenDKIM's MTA-side test client) against `milterkit milter`, three messages on three
-- connections: a clean one (no modification at all), one with an .exe attachment (report header added,
-- body replaced) and a message/partial (refused with 550 5.7.1).
--   miltertest -D port=8890 -s daemon.lua
-- miltertest does not print a Lua error's text, so fail() echoes it first; exit status 0 means PASS.

local sock = "inet:" .. (port or "8890") .. "@127.0.0.1"

local function fail(msg)
	mt.echo("FAIL: " .. msg)
	error(msg)
end

local function check(err, what)
	if err ~= nil then fail(what .. ": " .. tostring(err)) end
end

-- Sends one step unless the milter negotiated it away; reads a reply only when one is due.
local function step(conn, name, skip_flag, no_reply_flag, send)
	if mt.test_option(conn, skip_flag) then return end
	check(send(), name)
	if mt.test_option(conn, no_reply_flag) then return end
	local reply = mt.getreply(conn)
	if reply ~= SMFIR_CONTINUE then fail(name .. ": reply " .. tostring(reply)) end
end

local function run(headers, body)
	local ok, conn = pcall(mt.connect, sock, 50, 0.1)
	if not ok or conn == nil then fail("connect " .. sock .. ": " .. tostring(conn)) end
	mt.set_timeout(10)
	check(mt.negotiate(conn, nil, nil, nil), "negotiate")
	for _, action in ipairs({ SMFIF_ADDHDRS, SMFIF_CHGHDRS, SMFIF_CHGBODY, SMFIF_QUARANTINE }) do
		if not mt.test_action(conn, action) then fail("action not requested: " .. action) end
	end
	step(conn, "connect", SMFIP_NOCONNECT, SMFIP_NR_CONN, function() return mt.conninfo(conn, "client.test", "127.0.0.1") end)
	step(conn, "helo", SMFIP_NOHELO, SMFIP_NR_HELO, function() return mt.helo(conn, "client.test") end)
	step(conn, "mail", SMFIP_NOMAIL, SMFIP_NR_MAIL, function()
		mt.macro(conn, SMFIC_MAIL, "i", "MT0001")
		return mt.mailfrom(conn, "<sender@example.com>")
	end)
	step(conn, "rcpt", SMFIP_NORCPT, SMFIP_NR_RCPT, function() return mt.rcptto(conn, "<alice@lab.test>") end)
	for _, h in ipairs(headers) do
		step(conn, "header", SMFIP_NOHDRS, SMFIP_NR_HDR, function() return mt.header(conn, h[1], h[2]) end)
	end
	step(conn, "eoh", SMFIP_NOEOH, SMFIP_NR_EOH, function() return mt.eoh(conn) end)
	step(conn, "body", SMFIP_NOBODY, SMFIP_NR_BODY, function() return mt.bodystring(conn, body) end)
	check(mt.eom(conn), "eom")
	return conn, mt.getreply(conn)
end

local function unchanged(conn, what)
	for _, op in ipairs({ "MT_HDRADD", "MT_HDRINSERT", "MT_HDRCHANGE", "MT_HDRDELETE", "MT_BODYCHANGE", "MT_QUARANTINE" }) do
		if mt.eom_check(conn, _G[op]) then fail(what .. ": unexpected " .. op) end
	end
end

-- 1. Clean: continue, and no modification at all.
local conn, reply = run({ { "From", "sender@example.com" }, { "To", "alice@lab.test" }, { "Subject", "hello" } }, "Just text.\r\n")
if reply ~= SMFIR_CONTINUE then fail("clean: eom reply " .. tostring(reply)) end
unchanged(conn, "clean")
mt.disconnect(conn)
mt.echo("clean message: no modification")

-- 2. A Windows executable named invoice.exe: the report header, and a new body without it.
local exe = "TVqQAAMAAABQRQAA"
local body = table.concat({
	"--b", "Content-Type: text/plain", "", "See attached.",
	"--b", "Content-Type: application/octet-stream; name=\"invoice.exe\"", "Content-Transfer-Encoding: base64", "", exe,
	"--b--", "" }, "\r\n")
conn, reply = run({ { "From", "sender@example.com" }, { "Subject", "invoice" }, { "MIME-Version", "1.0" },
	{ "Content-Type", "multipart/mixed; boundary=\"b\"" } }, body)
if reply ~= SMFIR_CONTINUE then fail("defang: eom reply " .. tostring(reply)) end
if not mt.eom_check(conn, MT_HDRADD, "X-Milterkit-Defang") then fail("defang: no report header") end
local report = mt.getheader(conn, "X-Milterkit-Defang", 0)
if not string.find(report, "^ ?changed; 2 replace banned%-extension,executable%-content$") then fail("defang: report header is " .. tostring(report)) end
if not mt.eom_check(conn, MT_BODYCHANGE) then fail("defang: body not replaced") end
if mt.eom_check(conn, MT_BODYCHANGE, body) then fail("defang: body replaced by itself") end
mt.disconnect(conn)
mt.echo("dangerous message: report header added, body replaced")

-- 3. message/partial (reassembly would hide content from any filter): refused.
conn, reply = run({ { "From", "sender@example.com" }, { "Subject", "part 1" },
	{ "Content-Type", "message/partial; id=\"x\"; number=1; total=2" } }, "fragment\r\n")
if reply ~= SMFIR_REPLYCODE then fail("partial: eom reply " .. tostring(reply)) end
if not mt.eom_check(conn, MT_SMTPREPLY, "550", "5.7.1", "Message refused: content not accepted by policy") then fail("partial: wrong reply") end
mt.disconnect(conn)
mt.echo("message/partial: refused with 550 5.7.1")
mt.echo("daemon.lua: PASS")
