package openaitest

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

func respReq(t *testing.T, s *Server, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.APIBase()+"/responses", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// TestResponsesEndpoint: the endpoint exists only with SetResponses;
// it refuses what OpenAI refuses, answers Response objects and streams
// that CheckStream passes, cut and failed as the behaviors say.
func TestResponsesEndpoint(t *testing.T) {
	s := newServer(t)
	if code, body := respReq(t, s, `{"model":"demo-chat","input":"hi"}`); code != 404 || !strings.Contains(body, "Invalid URL") {
		t.Fatalf("without SetResponses: %d %s", code, body)
	}
	s.SetResponses(true)
	for _, tc := range []struct{ body, says string }{
		{`{"model":"demo-chat","input":"hi","messages":[]}`, "Unrecognized request argument supplied: messages"},
		{`{"model":"demo-chat","input":"hi","previous_response_id":"resp_1"}`, "Previous response with id 'resp_1' not found."},
		{`{"model":"demo-chat","input":[{"type":"function_call_output","call_id":"c","output":"x"}]}`, "No tool call found for function call output with call_id c."},
		{`{"model":"demo-chat","input":[{"type":"item_reference","id":"msg_1"}]}`, "Item with id 'msg_1' not found."},
		{`{"model":"demo-chat","input":[{"role":"tool","content":"x"}]}`, "Invalid value: 'tool'"},
		{`{"model":"demo-chat","input":"hi","max_output_tokens":8}`, "integer below minimum value"},
		{`{"model":"demo-chat"}`, "Missing required parameter: 'input'."},
	} {
		if code, body := respReq(t, s, tc.body); code != 400 || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %s, want 400 saying %q", tc.body, code, body, tc.says)
		}
	}
	if code, body := respReq(t, s, `{"model":"demo-chat","input":"hello there","tools":[{"type":"web_search"}]}`); code != 200 || !strings.Contains(body, "echo: hello there") {
		t.Errorf("plain: %d %s", code, body)
	}
	s.SetReasoning("hmm")
	for _, body := range []string{
		`{"model":"demo-chat","input":"hello there","stream":true,"reasoning":{"summary":"auto"}}`,
		`{"model":"demo-chat","input":"call f {\"a\":1}","tools":[{"type":"function","name":"f"}],"stream":true}`,
		`{"model":"demo-chat","input":"one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen","max_output_tokens":16,"stream":true}`,
	} {
		code, raw := respReq(t, s, body)
		evs, err := ReadStream(strings.NewReader(raw))
		if code != 200 || err != nil {
			t.Fatalf("%d %v %s", code, err, raw)
		}
		if err := CheckStream(evs); err != nil {
			t.Errorf("%s: %v\n%s", body, err, raw)
		}
	}
	s.SetBehavior(testKey, StreamFailed)
	_, raw := respReq(t, s, `{"model":"demo-chat","input":"x","stream":true}`)
	evs, _ := ReadStream(strings.NewReader(raw))
	if err := CheckStream(evs); err != nil || evs[len(evs)-1].Event != "response.failed" {
		t.Errorf("StreamFailed: %v %s", err, raw)
	}
}

// TestCheckStream: each rule of the checker fails a stream that breaks
// it.
func TestCheckStream(t *testing.T) {
	ev := func(typ, rest string) StreamEvent {
		return StreamEvent{Event: typ, Data: []byte(`{"type":"` + typ + `",` + rest + `}`)}
	}
	resp := func(status string) string {
		return `"response":{"id":"resp_1","object":"response","status":"` + status + `","output":[],"usage":{"input_tokens":1,"output_tokens":2,"total_tokens":3}}`
	}
	head := []StreamEvent{ev("response.created", `"sequence_number":0,`+resp("in_progress")), ev("response.in_progress", `"sequence_number":1,`+resp("in_progress"))}
	with := func(evs ...StreamEvent) []StreamEvent { return append(append([]StreamEvent{}, head...), evs...) }
	end := func(seq int) StreamEvent {
		return ev("response.completed", `"sequence_number":`+strconv.Itoa(seq)+`,`+resp("completed"))
	}
	good := with(ev("response.completed", `"sequence_number":2,`+resp("completed")))
	if err := CheckStream(good); err != nil {
		t.Fatalf("a good stream: %v", err)
	}
	for name, tc := range map[string]struct {
		evs  []StreamEvent
		says string
	}{
		"sequence skips": {with(ev("response.completed", `"sequence_number":3,`+resp("completed"))), "sequence_number"},
		"no terminal":    {head, "ends without"},
		"name not type":  {with(StreamEvent{Event: "response.completed", Data: []byte(`{"type":"response.done","sequence_number":2}`)}), "has type"},
		"item never done": {with(ev("response.output_item.added", `"sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message"}`),
			ev("response.completed", `"sequence_number":3,`+resp("completed"))), "output items"},
		"index skips": {with(ev("response.output_item.added", `"sequence_number":2,"output_index":1,"item":{"id":"msg_1","type":"message"}`), end(3)), "output_index 0"},
		"args not deltas": {with(ev("response.output_item.added", `"sequence_number":2,"output_index":0,"item":{"id":"fc_1","type":"function_call"}`),
			ev("response.function_call_arguments.delta", `"sequence_number":3,"output_index":0,"item_id":"fc_1","delta":"{\"a\""`),
			ev("response.function_call_arguments.done", `"sequence_number":4,"output_index":0,"item_id":"fc_1","arguments":"{\"a\":1}"`), end(5)), "not the deltas"},
		"text not deltas": {with(ev("response.output_item.added", `"sequence_number":2,"output_index":0,"item":{"id":"msg_1","type":"message"}`),
			ev("response.content_part.added", `"sequence_number":3,"output_index":0,"item_id":"msg_1","content_index":0,"part":{"type":"output_text","text":""}`),
			ev("response.output_text.delta", `"sequence_number":4,"output_index":0,"item_id":"msg_1","content_index":0,"delta":"a"`),
			ev("response.output_text.done", `"sequence_number":5,"output_index":0,"item_id":"msg_1","content_index":0,"text":"ab"`), end(6)), "deltas make"},
		"wrong response": {with(ev("response.completed", `"sequence_number":2,"response":{"id":"resp_2","status":"completed","usage":{"input_tokens":1,"output_tokens":1,"total_tokens":2}}`)), "resp_1"},
		"bad usage":      {with(ev("response.completed", `"sequence_number":2,"response":{"id":"resp_1","status":"completed","output":[],"usage":{"input_tokens":1,"output_tokens":1,"total_tokens":5}}`)), "total_tokens"},
	} {
		if err := CheckStream(tc.evs); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v, want an error saying %q", name, err, tc.says)
		}
	}
}
