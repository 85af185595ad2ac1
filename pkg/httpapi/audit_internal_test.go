package httpapi

import "testing"

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "ana", 64, "ana"},
		{"spaces collapsed and trimmed", "  ana \t  ops ", 64, "ana ops"},
		{"newlines cannot forge a line", "ana\nlevel=ERROR\r\n", 64, "ana level=ERROR"},
		{"control and format characters dropped", "a\x00n\x1ba\u202e\u200b", 64, "ana"},
		{"invalid UTF-8 dropped", "an\xffa", 64, "ana"},
		{"unicode kept", "José Ñ", 64, "José Ñ"},
		{"bounded", "abcdefgh", 5, "abcde"},
		{"bounded on a character", "ééé", 5, "éé"},
		{"bounded with its space", "abcd efg", 5, "abcd"},
		{"empty", " \t ", 64, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sanitize(tt.in, tt.max); got != tt.want {
				t.Fatalf("sanitize(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}
