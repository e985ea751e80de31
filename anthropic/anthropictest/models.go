package anthropictest

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// listModels serves GET /v1/models: pages of limit models (default 20,
// 1 to 1000, and no more than SetModelsPageMax) after after_id or before
// before_id, with has_more, first_id and last_id.
func (c *call) listModels() {
	if !c.authorize() {
		return
	}
	s := c.s
	s.mu.Lock()
	b := s.behaviors[c.key]
	models := slices.Clone(s.models)
	pageMax := s.pageMax
	s.mu.Unlock()
	if c.scriptedError(b, "") {
		return
	}

	q := c.r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			c.fail(http.StatusBadRequest, errInvalid("limit: Input should be a valid integer, unable to parse string as an integer"), "limit "+v+" is not an integer")
			return
		case n < 1:
			c.fail(http.StatusBadRequest, errInvalid("limit: Input should be greater than or equal to 1"), "limit below 1")
			return
		case n > 1000:
			c.fail(http.StatusBadRequest, errInvalid("limit: Input should be less than or equal to 1000"), "limit above 1000")
			return
		}
		limit = n
	}
	limit = min(limit, pageMax)
	after, before := q.Get("after_id"), q.Get("before_id")
	if after != "" && before != "" {
		c.fail(http.StatusBadRequest, errInvalid("after_id and before_id cannot both be given"), "after_id and before_id together")
		return
	}
	from, to := 0, min(limit, len(models))
	for _, cursor := range []struct{ name, id string }{{"after_id", after}, {"before_id", before}} {
		if cursor.id == "" {
			continue
		}
		i := slices.Index(models, cursor.id)
		if i < 0 {
			c.fail(http.StatusBadRequest, errInvalid(cursor.name+": no model has the id '"+cursor.id+"'"), cursor.name+" names no model")
			return
		}
		if cursor.name == "after_id" {
			from, to = i+1, min(i+1+limit, len(models))
		} else {
			from, to = max(0, i-limit), i
		}
	}
	page := models[from:to]
	data := make([]obj, 0, len(page))
	for _, id := range page {
		data = append(data, obj{{"type", "model"}, {"id", id}, {"display_name", displayName(id)}, {"created_at", ModelCreatedAt}})
	}
	var first, last any
	if len(page) > 0 {
		first, last = page[0], page[len(page)-1]
	}
	hasMore := to < len(models)
	if before != "" {
		hasMore = from > 0
	}
	c.finish(http.StatusOK, "ok")
	writeJSON(c.w, http.StatusOK, obj{{"data", data}, {"has_more", hasMore}, {"first_id", first}, {"last_id", last}})
}

// displayName makes a model's name for people out of its id:
// claude-sonnet-4-5-20250929 is "Claude Sonnet 4.5".
func displayName(id string) string {
	var words []string
	number := false
	for _, part := range strings.Split(id, "-") {
		if len(part) == 8 && strings.Trim(part, "0123456789") == "" {
			continue // the date
		}
		isNum := part != "" && strings.Trim(part, "0123456789") == ""
		switch {
		case isNum && number:
			words[len(words)-1] += "." + part
		case part != "":
			words = append(words, strings.ToUpper(part[:1])+part[1:])
		}
		number = isNum
	}
	return strings.Join(words, " ")
}
