package httpapi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// headerConfig is a Portkey-style routing config for one request, JSON
// (or JSON in base64):
//
//	{"strategy": {"mode": "fallback", "on_status_codes": [429, 503]},
//	 "targets": [{"model": "sim-small"}, {"model": "sim-large"}],
//	 "retry": {"attempts": 2, "on_status_codes": [500, 503]},
//	 "request_timeout": 10000}
//
// Its shape is checked here (a 400 invalid_header naming the JSON path);
// the gateway checks its targets against the key and the routing table.
const headerConfig = "X-Tollgate-Config"

// maxConfigTimeout bounds request_timeout (ms) before the gateway bounds
// it by its own request timeout.
const maxConfigTimeout = int64(time.Hour / time.Millisecond)

// configError is a 400 naming the config's JSON path.
func configError(path, msg string) *llm.Error {
	param := "x-tollgate-config"
	if path != "" {
		param += "." + path
	}
	return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "invalid_header", Param: param,
		Message: "invalid x-tollgate-config header: " + msg}
}

// parseConfig reads an x-tollgate-config header.
func parseConfig(header string) (*gateway.Config, error) {
	data := []byte(strings.TrimSpace(header))
	if len(data) > 0 && data[0] != '{' {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
			if dec, err := enc.DecodeString(string(data)); err == nil {
				data = bytes.TrimSpace(dec)
				break
			}
		}
	}
	if !json.Valid(data) || len(data) == 0 || data[0] != '{' {
		return nil, configError("", "expected a JSON object (or one in base64)")
	}
	if err := llm.CheckKeys(data, nil); err != nil {
		e, _ := llm.AsError(err)
		return nil, configError(e.Param, e.Message)
	}
	cfg := &gateway.Config{}
	var modeSet bool
	err := configMembers(data, "", func(path, key string, val []byte) error {
		switch key {
		case "strategy":
			return configMembers(val, path, func(path, key string, val []byte) error {
				switch key {
				case "mode":
					var mode string
					if json.Unmarshal(val, &mode) != nil || (mode != gateway.ConfigFallback && mode != gateway.ConfigLoadbalance) {
						return configError(path, `mode must be "fallback" or "loadbalance"`)
					}
					cfg.Mode, modeSet = mode, true
					return nil
				case "on_status_codes":
					codes, err := statusCodes(path, val)
					cfg.FallbackOn = codes
					return err
				}
				return unknownMember(path)
			})
		case "targets":
			var targets []json.RawMessage
			if json.Unmarshal(val, &targets) != nil || len(targets) == 0 || len(targets) > gateway.MaxTargets {
				return configError(path, fmt.Sprintf("targets must be an array of 1 to %d targets", gateway.MaxTargets))
			}
			for i, raw := range targets {
				tg := gateway.Target{Weight: 1}
				at := fmt.Sprintf("%s[%d]", path, i)
				err := configMembers(raw, at, func(path, key string, val []byte) error {
					switch key {
					case "model":
						if json.Unmarshal(val, &tg.Model) != nil || tg.Model == "" {
							return configError(path, "model must name a model or route")
						}
						return nil
					case "weight":
						if json.Unmarshal(val, &tg.Weight) != nil || !(tg.Weight > 0) || math.IsInf(tg.Weight, 0) {
							return configError(path, "weight must be a number greater than 0")
						}
						return nil
					}
					return unknownMember(path)
				})
				if err != nil {
					return err
				}
				if tg.Model == "" {
					return configError(at+".model", "each target names a model or route (model)")
				}
				cfg.Targets = append(cfg.Targets, tg)
			}
			return nil
		case "retry":
			cfg.Retry = &gateway.Retry{}
			return configMembers(val, path, func(path, key string, val []byte) error {
				switch key {
				case "attempts":
					if json.Unmarshal(val, &cfg.Retry.Attempts) != nil || cfg.Retry.Attempts < 0 || cfg.Retry.Attempts > gateway.MaxRetryAttempts {
						return configError(path, fmt.Sprintf("attempts must be a whole number from 0 to %d", gateway.MaxRetryAttempts))
					}
					return nil
				case "on_status_codes":
					codes, err := statusCodes(path, val)
					cfg.Retry.On = codes
					return err
				}
				return unknownMember(path)
			})
		case "request_timeout":
			var ms int64
			if json.Unmarshal(val, &ms) != nil || ms < 1 || ms > maxConfigTimeout {
				return configError(path, fmt.Sprintf("request_timeout must be a whole number of milliseconds from 1 to %d", maxConfigTimeout))
			}
			cfg.Timeout = time.Duration(ms) * time.Millisecond
			return nil
		}
		return unknownMember(path)
	})
	switch {
	case err != nil:
		return nil, err
	case !modeSet:
		return nil, configError("strategy.mode", `strategy.mode is required: "fallback" or "loadbalance"`)
	case len(cfg.Targets) == 0:
		return nil, configError("targets", "targets is required")
	case cfg.FallbackOn != nil && cfg.Mode != gateway.ConfigFallback:
		return nil, configError("strategy.on_status_codes", "on_status_codes applies to mode fallback only")
	}
	return cfg, nil
}

// configMembers calls fn with each member of the object obj at path, in order.
func configMembers(obj []byte, path string, fn func(path, key string, val []byte) error) error {
	if t := bytes.TrimSpace(obj); len(t) == 0 || t[0] != '{' {
		if path == "" {
			return configError("", "expected a JSON object")
		}
		return configError(path, path+" must be an object")
	}
	_, err := llm.TakeMembers(obj, func(key, val []byte) (bool, error) {
		p := llm.Clip(string(key), 64)
		if path != "" {
			p = path + "." + p
		}
		return false, fn(p, string(key), val)
	})
	return err
}

func unknownMember(path string) error {
	return configError(path, "unknown member "+path)
}

// statusCodes reads an array of HTTP error statuses (400 to 599).
func statusCodes(path string, val []byte) ([]int, error) {
	var codes []int
	if json.Unmarshal(val, &codes) != nil || len(codes) == 0 || len(codes) > 32 {
		return nil, configError(path, "on_status_codes must be an array of 1 to 32 statuses")
	}
	for _, c := range codes {
		if c < 400 || c > 599 {
			return nil, configError(path, fmt.Sprintf("%d is not an error status (400 to 599)", c))
		}
	}
	return codes, nil
}
