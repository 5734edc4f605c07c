"""Model export (ONNX for ONNX Runtime and TensorRT). See :mod:`siamrpnpp_ros.export.onnx`."""

from .onnx import export_search_onnx, export_template_onnx

__all__ = ["export_search_onnx", "export_template_onnx"]
