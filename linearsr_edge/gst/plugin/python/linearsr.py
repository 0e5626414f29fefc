"""GStreamer element ``linearsr``: LinearSR super-resolution of raw video, on any installed backend.

    gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,width=160,height=90 ! videoconvert \\
        ! linearsr bundle=bundles/ov-fp32 ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4

Found by GStreamer's Python plugin loader in ``$GST_PLUGIN_PATH/python/`` (``linearsr-gst env`` prints the
lines). A thin adapter: the caps arithmetic, buffer layouts and settings live in ``linearsr_edge.gst`` and the
work in ``SRRuntime``; only GStreamer's calls are here.
"""

from __future__ import annotations

from typing import ClassVar

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, GObject, Gst, GstBase, GstVideo  # noqa: E402

from linearsr_edge.errors import ConfigError  # noqa: E402
from linearsr_edge.gst import (  # noqa: E402
    CAPS_FORMATS,
    ElementSettings,
    frame_from_buffer,
    frame_into_buffer,
    raw_format,
    scaled_size,
    typed_options,
)

Gst.init_python()

CAPS = Gst.Caps.from_string(
    f"video/x-raw, format=(string){CAPS_FORMATS}, width=(int)[1, 2147483647], height=(int)[1, 2147483647], "
    "framerate=(fraction)[0/1, 2147483647/1]"
)
PROPS = {f.name: f for f in ElementSettings.__dataclass_fields__.values()}


class LinearSR(GstBase.BaseTransform):
    __gstmetadata__ = (
        "LinearSR super-resolution",
        "Filter/Effect/Video",
        "Upscales raw RGB/BGR/RGBx/BGRx video x4 (the model's factor) with a LinearSR bundle on ONNX Runtime, "
        "OpenVINO, TensorRT, Core ML or ExecuTorch",
        "linearsr-edge",
    )
    __gsttemplates__ = (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, CAPS),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, CAPS),
    )
    __gproperties__: ClassVar[dict] = {
        name: (str, name, blurb, default, GObject.ParamFlags.READWRITE)
        if isinstance(default, str)
        else (int, name, blurb, 0, 2147483647, default, GObject.ParamFlags.READWRITE)
        for name, blurb, default in (
            ("bundle", "exported bundle folder (linearsr-export)", ""),
            ("backend", "runtime backend, or auto", "auto"),
            ("threads", "intra-op threads (0: the backend's)", 0),
            ("steps", "sampling steps (0: the model's)", 0),
            ("seed", "the stream's noise seed", 0),
            ("tile", "tile side in output pixels (0: only frames above the bundle's profile)", 0),
            ("roi", "x,y,w,h of the input to upscale (empty: the whole frame)", ""),
            ("options", "backend options, name=value;... (e.g. device=CPU;precision_hint=f32)", ""),
            ("reuse", "tiles: recompute only the tiles a change reaches (fixed cameras); none", "none"),
            ("reuse-threshold", "input levels an encoder tile may move and still be reused (sensor noise)", 0),
        )
    }

    def __init__(self) -> None:
        super().__init__()
        self._values = {name: field.default for name, field in PROPS.items()}
        self._runtime = None
        self._scale = None
        self._scale_of: tuple[str, int] = ("", 4)  # (bundle path, its factor) read before start
        self._in = self._out = None
        self.set_qos_enabled(True)

    # -- properties -----------------------------------------------------------------------------
    def do_get_property(self, prop):
        return self._values[prop.name.replace("-", "_")]

    def do_set_property(self, prop, value) -> None:
        self._values[prop.name.replace("-", "_")] = value

    # -- lifecycle --------------------------------------------------------------------------------
    def do_start(self) -> bool:
        from linearsr_edge.errors import LinearSRError

        try:
            settings = ElementSettings(**self._values)
            self._settings = settings
            self._runtime = self._load(settings)
            self._scale = self._runtime.cfg.upscale
            from linearsr_edge.pipeline.reuse import TileMemo

            self._memo = TileMemo(threshold=settings.reuse_threshold) if settings.reuse == "tiles" else None
        except LinearSRError as exc:
            self._error(Gst.ResourceError.SETTINGS, str(exc))
            return False
        return True

    def do_stop(self) -> bool:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        return True

    @staticmethod
    def _load(settings: ElementSettings):
        from linearsr_edge.bundle import Bundle
        from linearsr_edge.errors import ConfigError
        from linearsr_edge.pipeline.session import choose_backend
        from linearsr_edge.runtime import SRRuntime

        if not settings.bundle:
            raise ConfigError("linearsr: set bundle=PATH (an exported bundle folder)")
        bundle = Bundle.load(settings.bundle)
        info = choose_backend(bundle.format, settings.backend)
        return SRRuntime.load(bundle, backend=info.name, options=typed_options(info.options, settings))

    def _error(self, code, text: str) -> None:
        error = GLib.Error.new_literal(Gst.ResourceError.quark(), text, code)
        self.post_message(Gst.Message.new_error(self, error, "the bundle or the element's settings"))

    # -- caps ---------------------------------------------------------------------------------------
    def _factor(self) -> int:
        if self._scale is not None:
            return self._scale
        # negotiation before start (linking, a caps query): the manifest says it, read once per bundle path
        # (loading a bundle hashes its files, and negotiation asks several times)
        path = self._values["bundle"]
        if self._scale_of[0] != path:
            from linearsr_edge.bundle import Bundle
            from linearsr_edge.errors import LinearSRError

            try:
                self._scale_of = (path, Bundle.load(path).cfg.upscale)
            except LinearSRError:  # no bundle yet, or a bad one: start() says why on the bus
                return 4
        return self._scale_of[1]

    def do_transform_caps(self, direction, caps, filter_):
        side = "sink" if direction == Gst.PadDirection.SINK else "src"
        out = Gst.Caps.new_empty()
        for i in range(caps.get_size()):
            s = caps.get_structure(i).copy()
            ok_w, w = s.get_int("width")
            ok_h, h = s.get_int("height")
            if ok_w and ok_h:
                try:
                    w, h = scaled_size(w, h, self._factor(), side)
                except ConfigError:  # a source size no input gives: not a caps this element can answer
                    continue
                s.set_value("width", w)
                s.set_value("height", h)
            else:
                s.remove_field("width")  # ranges: any size on the other side, fixated below
                s.remove_field("height")
            s.remove_field("format")  # any of the four on the other side: the same one is preferred (fixate)
            s, _ = Gst.Structure.from_string(f"{s.to_string().rstrip(';')}, format=(string){CAPS_FORMATS}")
            out.append_structure(s)
        return out.intersect(filter_) if filter_ is not None else out

    def do_fixate_caps(self, direction, caps, othercaps):
        side = "sink" if direction == Gst.PadDirection.SINK else "src"
        s = caps.get_structure(0)
        ok_w, w = s.get_int("width")
        ok_h, h = s.get_int("height")
        o = othercaps.get_structure(0).copy()
        fmt = s.get_string("format")
        if fmt:
            o.fixate_field_string("format", fmt)
        if ok_w and ok_h:
            w, h = scaled_size(w, h, self._factor(), side)
            o.fixate_field_nearest_int("width", w)
            o.fixate_field_nearest_int("height", h)
        fixed = Gst.Caps.new_empty()
        fixed.append_structure(o)
        return fixed.fixate()

    def do_set_caps(self, incaps, outcaps) -> bool:
        self._in = GstVideo.VideoInfo.new_from_caps(incaps)
        self._out = GstVideo.VideoInfo.new_from_caps(outcaps)
        s = self._factor()
        if (self._out.width, self._out.height) != (self._in.width * s, self._in.height * s):
            return False
        self._in_format = raw_format(self._in.finfo.name)
        self._out_format = raw_format(self._out.finfo.name)
        return True

    def do_get_unit_size(self, caps):
        info = GstVideo.VideoInfo.new_from_caps(caps)
        return True, info.size

    # -- frames ---------------------------------------------------------------------------------------
    def do_transform(self, inbuf, outbuf):
        from linearsr_edge.pipeline.process import SampleOptions

        settings = self._settings
        opts = SampleOptions(steps=settings.steps or None, seed=settings.seed)
        try:
            _, src = inbuf.map(Gst.MapFlags.READ)
            try:
                frame = frame_from_buffer(src.data, self._in_format, self._in.width, self._in.height,
                                          self._in.stride[0])  # fmt: skip
                order = self._in_format.order
                result = self._runtime.upscale(
                    frame, opts, color=order, out_color=self._out_format.order, roi=settings.roi_box(),
                    tile=settings.tile or None, tiling=True if settings.tile else None, reuse=self._memo,
                )  # fmt: skip
            finally:
                inbuf.unmap(src)
            _, dst = outbuf.map(Gst.MapFlags.WRITE)
            try:
                frame_into_buffer(result.image, dst.data, self._out_format, self._out.stride[0])
            finally:
                outbuf.unmap(dst)
        except Exception as exc:  # one bad frame: said on the bus, dropped, the stream goes on
            text = f"linearsr: frame at {inbuf.pts}: {exc}"
            error = GLib.Error.new_literal(Gst.StreamError.quark(), text, Gst.StreamError.FAILED)
            self.post_message(Gst.Message.new_warning(self, error, f"{type(exc).__name__}; the frame is dropped"))
            return Gst.FlowReturn.CUSTOM_SUCCESS  # GST_BASE_TRANSFORM_FLOW_DROPPED: nothing is pushed
        return Gst.FlowReturn.OK


GObject.type_register(LinearSR)
__gstelementfactory__ = ("linearsr", Gst.Rank.NONE, LinearSR)
