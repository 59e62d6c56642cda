package templates

import "github.com/a-h/templ"

// icons are small line drawings (viewBox 0 0 24 24, stroke currentColor),
// named after the Bootstrap Icons the original used so that class names such
// as bi-search stay the same. They are inline: no font, no CDN.
var icons = map[string]string{
	"search":          `<circle cx="10.5" cy="10.5" r="6.5"/><path d="M15.5 15.5 21 21"/>`,
	"shield-check":    `<path d="M12 3 4 6v6c0 5 3.5 8 8 9 4.5-1 8-4 8-9V6z"/><path d="m8.5 12 2.5 2.5 4.5-5"/>`,
	"shield-x":        `<path d="M12 3 4 6v6c0 5 3.5 8 8 9 4.5-1 8-4 8-9V6z"/><path d="m9 9.5 6 6m0-6-6 6"/>`,
	"x-circle":        `<circle cx="12" cy="12" r="9"/><path d="m9 9 6 6m0-6-6 6"/>`,
	"plus-circle":     `<circle cx="12" cy="12" r="9"/><path d="M12 8v8M8 12h8"/>`,
	"key":             `<circle cx="8" cy="15" r="4"/><path d="m11 12 9-9m-4 4 3 3m-5-1 2 2"/>`,
	"eye":             `<path d="M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12z"/><circle cx="12" cy="12" r="3"/>`,
	"pencil":          `<path d="M4 20h4L19 9l-4-4L4 16z"/><path d="m13.5 6.5 4 4"/>`,
	"slash-circle":    `<circle cx="12" cy="12" r="9"/><path d="m5.6 18.4 12.8-12.8"/>`,
	"clipboard":       `<rect x="6" y="4" width="12" height="17" rx="2"/><path d="M9 4V3h6v1"/>`,
	"box-arrow-right": `<path d="M14 4H5v16h9"/><path d="M10 12h11m-3-3 3 3-3 3"/>`,
	"speedometer":     `<path d="M3 17a9 9 0 1 1 18 0"/><path d="m12 17 4-6"/>`,
	"folder":          `<path d="M3 6h6l2 2h10v11H3z"/>`,
	"list":            `<path d="M8 6h13M8 12h13M8 18h13"/><circle cx="4" cy="6" r="1"/><circle cx="4" cy="12" r="1"/><circle cx="4" cy="18" r="1"/>`,
	"arrow-left":      `<path d="M20 12H4m6-6-6 6 6 6"/>`,
	"check-circle":    `<circle cx="12" cy="12" r="9"/><path d="m8 12 3 3 5-6"/>`,
	"exclamation":     `<path d="M12 3 2 20h20z"/><path d="M12 10v4m0 3v.5"/>`,
	"clock":           `<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3 3"/>`,
}

// Icon renders a named icon, hidden from assistive technology (the text
// next to it carries the meaning).
func Icon(name string) templ.Component {
	inner, ok := icons[name]
	if !ok {
		inner = ""
	}
	return templ.Raw(`<i class="bi bi-` + name + `" aria-hidden="true"><svg viewBox="0 0 24 24" width="1em" height="1em" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" focusable="false">` + inner + `</svg></i>`)
}
