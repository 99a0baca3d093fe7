-- wrk script: signed C2C.CallbackAfterSendMsg callbacks with realistic bodies and a
-- unique MsgKey each. Environment: SIGN, REQUEST_TIME (computed by run.sh),
-- RATE and CONNECTIONS (optional: pace each connection to offer RATE callbacks/s).
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  non200 = 0
end

local rate = tonumber(os.getenv("RATE") or "")
local connections = tonumber(os.getenv("CONNECTIONS") or "")
if rate and connections and rate > 0 then
  local per_request_ms = connections * 1000 / rate
  function delay()
    return math.floor(per_request_ms * (0.5 + math.random()))
  end
end

-- TARGET_PATH replaces the callback path (a peer that takes bodies elsewhere).
local path = os.getenv("TARGET_PATH") or ("/callback?SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg&contenttype=json"
  .. "&ClientIP=10.0.0.1&OptPlatform=iOS&RequestTime=" .. os.getenv("REQUEST_TIME") .. "&Sign=" .. os.getenv("SIGN"))
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"

local bodies = {
  '[{"MsgType":"TIMTextElem","MsgContent":{"Text":"红包 red packet 🧧 你好，今天下午三点开会 👍"}}]',
  '[{"MsgType":"TIMImageElem","MsgContent":{"UUID":"1853095_D61040894AC3DE44CDFFFB3EC7EB720F","ImageFormat":1,"ImageInfoArray":[{"Type":1,"Size":1853095,"Width":2448,"Height":3264,"URL":"https://im.example.com/img/1.jpg"},{"Type":2,"Size":2198,"Width":198,"Height":264,"URL":"https://im.example.com/img/2.jpg"}]}}]',
  '[{"MsgType":"TIMCustomElem","MsgContent":{"Data":"{\\"order\\":\\"A-1029\\",\\"status\\":\\"paid\\"}","Desc":"订单通知","Ext":"order","Sound":""}},{"MsgType":"TIMTextElem","MsgContent":{"Text":"您的订单已支付 ✅"}}]',
  '[{"MsgType":"TIMRelayElem","MsgContent":{"Title":"群聊的聊天记录","MsgNum":2,"CompatibleText":"请升级","AbstractList":["jared: 你好","Jonh: 😀 hi"],"MsgList":[{"From_Account":"jared","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"你好"}}]},{"From_Account":"Jonh","MsgBody":[{"MsgType":"TIMTextElem","MsgContent":{"Text":"😀 hi"}}]}]}}]',
}

-- BODY_BYTES: every body about that long (within a few bytes), its message one
-- custom element whose Data fills the rest, as a large custom message would.
local body_bytes = tonumber(os.getenv("BODY_BYTES") or "")
local padded = nil
if body_bytes then
  -- The envelope below with an empty Data is about 480 bytes.
  padded = '[{"MsgType":"TIMCustomElem","MsgContent":{"Data":"' .. string.rep("x", math.max(body_bytes - 480, 0))
    .. '","Desc":"","Ext":"","Sound":""}}]'
end

function request()
  counter = counter + 1
  local body = '{"CallbackCommand":"C2C.CallbackAfterSendMsg","From_Account":"user' .. (counter % 1000)
    .. '","To_Account":"user' .. ((counter * 7) % 1000) .. '","MsgSeq":' .. counter .. ',"MsgRandom":' .. (3998651049 - counter)
    .. ',"MsgTime":1557481126,"MsgKey":"' .. tid .. '_' .. counter .. '_' .. os.time()
    .. '","MsgId":"144115233406643804-1727163813-' .. counter
    .. '","OnlineOnlyFlag":0,"SendMsgResult":0,"ErrorInfo":"send msg succeed","UnreadMsgNum":7,"MsgBody":'
    .. (padded or bodies[(counter % #bodies) + 1]) .. ',"CloudCustomData":"your cloud custom data","EventTime":"1670574414123"}'
  return wrk.format(nil, path, nil, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non200 = non200 + 1
  end
end

function done(summary, latency, requests)
  local non = 0
  for _, t in ipairs(threads) do
    non = non + (t:get("non200") or 0)
  end
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    '{"requests":%d,"seconds":%.3f,"rps":%.0f,"non200":%d,"socket_errors":%d,"p50_ms":%.2f,"p99_ms":%.2f,"p999_ms":%.2f}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6), non + summary.errors.status,
    errors, latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
